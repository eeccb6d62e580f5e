// Package watchdogcmd is the watchdog's command line: `nimbus watchdog`,
// and the whole of `nimbus-watchdog`, the small build of it for function
// images (it links the watchdog alone, not the platform: a few MiB of
// memory, where the nimbus binary's set-up takes more than the smallest
// container Docker allows).
package watchdogcmd

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/watchdog"
)

// ErrNoCommand is returned when no program follows the flags.
var ErrNoCommand = errors.New("give the function's program after --, e.g. nimbus watchdog -- ./handler")

// Command is the watchdog command, writing the function's output to
// stdout and stderr.
func Command(use string, stdout, stderr io.Writer) *cobra.Command {
	var cfg watchdog.Config
	var fetch bool
	c := &cobra.Command{
		Use:   use + " [flags] -- COMMAND [ARGS...]",
		Short: "Run COMMAND as a function inside a container image (use as the image's entrypoint)",
		Long: `watchdog gives any program the function protocols, with the same semantics as
the process driver: with --protocol stdio each request runs COMMAND once (body on
stdin, response on stdout, non-zero exit answers 500); with --protocol http COMMAND
serves HTTP on $PORT and the watchdog fronts it. It listens on --listen and answers
` + watchdog.HealthPath + ` once the function is ready.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Command = args
			cfg.Stdout, cfg.Stderr = stdout, stderr
			if len(args) == 0 {
				return ErrNoCommand
			}
			if fetch {
				if _, err := fetchPackage(cmd.Context(), stderr); err != nil {
					return err
				}
			}
			return watchdog.Serve(cmd.Context(), cfg)
		},
	}
	port := envOr("PORT", "8080")
	f := c.Flags()
	f.SetInterspersed(false) // everything after COMMAND is COMMAND's
	f.BoolVar(&fetch, "fetch", false, "first fetch the package $NIMBUS_PACKAGE (a digest) from $NIMBUS_PACKAGE_URL with the token $NIMBUS_PACKAGE_TOKEN, check and unpack it into $NIMBUS_PACKAGE_DIR (default /nimbus/fn) and run COMMAND there")
	f.StringVar(&cfg.Listen, "listen", "0.0.0.0:"+port, "address to serve on (default 0.0.0.0:$PORT, else :8080)")
	f.StringVar(&cfg.Protocol, "protocol", envOr("NIMBUS_PROTOCOL", "http"), "http or stdio (default $NIMBUS_PROTOCOL, else http)")
	f.IntVar(&cfg.UpstreamPort, "upstream-port", 8081, "http: the port COMMAND serves on, given to it as PORT")
	f.StringVar(&cfg.HealthPath, "health-path", envOr("NIMBUS_HEALTH_PATH", "/"), "http: path probed on COMMAND until it answers")
	drain, err := time.ParseDuration(envOr("NIMBUS_TIMEOUT", "10s"))
	if err != nil || drain <= 0 {
		drain = 10 * time.Second
	}
	f.DurationVar(&cfg.Drain, "drain", drain, "on SIGTERM, how long requests in flight may take to finish (default $NIMBUS_TIMEOUT, the function's timeout, else 10s)")
	return c
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
