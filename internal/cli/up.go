package cli

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/outbound"
	"nimbus/internal/server"
)

func upCmd(g *globals) *cobra.Command {
	var cfg server.Config
	var verbose bool
	var allow []string
	var uids string
	c := &cobra.Command{
		Use:   "up",
		Short: "Run the whole platform on this machine (gateway, controller, embedded NATS)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			cfg.DataDir = g.dataDir
			cfg.Version = Version
			prefixes, err := outbound.ParseAllow(allow)
			if err != nil {
				return usageError{err}
			}
			cfg.AllowOutbound = prefixes
			if cfg.FunctionUIDs, err = server.ParseUIDRange(uids); err != nil {
				return usageError{fmt.Errorf("--function-uids: %w", err)}
			}
			return server.Run(cmd.Context(), cfg, func(s server.Started) {
				fmt.Fprintf(g.stdout, "nimbus %s is up at %s\n", Version, s.URL)
				fmt.Fprintf(g.stdout, "  data dir:    %s\n", g.dataDir)
				if s.NewToken != "" {
					fmt.Fprintf(g.stdout, "  admin token: %s (shown once; kept in %s)\n", s.NewToken, s.TokenPath)
				} else {
					fmt.Fprintf(g.stdout, "  admin token: in %s\n", s.TokenPath)
				}
				if s.Kube != "" {
					fmt.Fprintf(g.stdout, "  runtimes:    process, %s, kube (%s)\n", s.Docker, s.Kube)
				} else {
					fmt.Fprintf(g.stdout, "  runtimes:    process, %s\n", s.Docker)
				}
				fmt.Fprintf(g.stdout, "  isolation:   %s\n", s.Isolation)
				if s.EventsURL != "" {
					fmt.Fprintf(g.stdout, "  events API:  %s (Event Gateway subscriptions; CloudEvents also at %s/events)\n", s.EventsURL, s.URL)
				}
				fmt.Fprintf(g.stdout, "  try:         nimbus new hello --lang go && nimbus deploy hello && nimbus invoke hello\n")
			})
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve HTTP on")
	f.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS server instead of the embedded one")
	f.IntVar(&cfg.NATSReplicas, "nats-replicas", 1, "copies of every stream and bucket nimbus makes: 3 on a 3-member NATS cluster (--nats-url), so that losing a member loses nothing")
	f.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "read the admin token from this file (e.g. a mounted Kubernetes Secret every replica shares) instead of the data dir's admin-token")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "also let NATS clients reach the embedded server here (e.g. 127.0.0.1:4222)")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 32<<20, "largest invocation body accepted (413 beyond)")
	f.DurationVar(&cfg.BodyReadTimeout, "body-read-timeout", 5*time.Minute, "how long a request body may take to arrive (408 beyond); an invocation's is bounded by its function's timeout too")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to let in-flight requests finish on SIGTERM")
	f.StringVar(&cfg.RunAs, "run-as", "", "run every function as this one user (default when root: a user of its own per function)")
	f.StringVar(&uids, "function-uids", "700000-799999", "the user ids functions run as, one per function (when root)")
	f.Int64Var(&cfg.PackageLimits.MaxBytes, "max-unpacked-package-bytes", 1<<30, "most bytes one package may unpack to (checked at upload)")
	f.IntVar(&cfg.PackageLimits.MaxFiles, "max-package-files", 20000, "most files and directories one package may hold")
	f.Int64Var(&cfg.MaxUnpackedBytes, "max-unpacked-bytes", 10<<30, "most bytes all unpacked packages may take together")
	f.DurationVar(&cfg.AsyncAckWait, "async-ack-wait", 30*time.Second, "how soon an async invocation whose worker vanished (a crash) is delivered again")
	f.StringArrayVar(&allow, "allow-outbound", nil, "let callbacks and outside event endpoints reach this CIDR or address, though private, loopback or link-local (repeatable)")
	f.StringVar(&cfg.EventsListen, "events-listen", "127.0.0.1:4000", `address of the Event Gateway events API ("off" for none)`)
	f.StringVar(&cfg.LambdaEndpoint, "lambda-endpoint", "", "Lambda Invoke endpoint for Event Gateway functions of type awslambda (default: nimbus's own Lambda API)")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "run functions of runtime kube on this kubeconfig's cluster (default: the in-cluster config when nimbus runs in a pod)")
	f.StringVar(&cfg.Provider, "provider", "docker", "the runtime of functions that name none, OpenFaaS deploys among them: docker (packages run as processes) or kube (images and packages)")
	f.StringVar(&cfg.KubeAPIURL, "kube-api-url", "", "the nimbus API's URL as the kube functions' pods reach it, from which they fetch their packages (needed to run packages on kube)")
	f.StringVar(&cfg.KubeRuntimeImage, "kube-runtime-image", "localhost/nimbus-runtime:dev", "the image kube runs packages in: go run ./deploy/images -image runtime builds it")
	f.StringVar(&cfg.KubeNamespace, "kube-namespace", "openfaas-fn", "the namespace kube functions' Deployments go in")
	f.DurationVar(&cfg.CallRetention, "call-retention", 24*time.Hour, "how long call records are kept")
	f.BoolVar(&cfg.MetricsAuth, "metrics-auth", false, "make /metrics need the admin token (bearer, or basic admin:TOKEN as Prometheus sends it)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log debug lines")
	return c
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.stdout, "nimbus", Version)
			return nil
		},
	}
}
