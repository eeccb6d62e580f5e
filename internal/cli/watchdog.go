package cli

import (
	"os"

	"github.com/spf13/cobra"

	"nimbus/internal/watchdog"
)

func watchdogCmd(g *globals) *cobra.Command {
	var cfg watchdog.Config
	c := &cobra.Command{
		Use:   "watchdog [flags] -- COMMAND [ARGS...]",
		Short: "Run COMMAND as a function inside a container image (use as the image's entrypoint)",
		Long: `watchdog gives any program the function protocols, with the same semantics as
the process driver: with --protocol stdio each request runs COMMAND once (body on
stdin, response on stdout, non-zero exit answers 500); with --protocol http COMMAND
serves HTTP on $PORT and the watchdog fronts it. It listens on --listen and answers
` + watchdog.HealthPath + ` once the function is ready.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Command = args
			cfg.Stdout, cfg.Stderr = g.stdout, g.stderr
			if len(args) == 0 {
				return usagef("give the function's program after --, e.g. nimbus watchdog -- ./handler")
			}
			return watchdog.Serve(cmd.Context(), cfg)
		},
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	proto := os.Getenv("NIMBUS_PROTOCOL")
	if proto == "" {
		proto = "http"
	}
	f := c.Flags()
	f.SetInterspersed(false) // everything after COMMAND is COMMAND's
	f.StringVar(&cfg.Listen, "listen", "0.0.0.0:"+port, "address to serve on (default 0.0.0.0:$PORT, else :8080)")
	f.StringVar(&cfg.Protocol, "protocol", proto, "http or stdio (default $NIMBUS_PROTOCOL, else http)")
	f.IntVar(&cfg.UpstreamPort, "upstream-port", 8081, "http: the port COMMAND serves on, given to it as PORT")
	f.StringVar(&cfg.HealthPath, "health-path", envOr("NIMBUS_HEALTH_PATH", "/"), "http: path probed on COMMAND until it answers")
	return c
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
