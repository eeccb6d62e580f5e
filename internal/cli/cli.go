// Package cli is the nimbus command line. Run is the whole program: it parses
// the arguments, runs one command and returns the exit code (0 success, 1
// failure, 2 usage error). Every error says what to do next.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"nimbus/internal/client"
	"nimbus/internal/server"
)

// Version is set at build time with -ldflags "-X nimbus/internal/cli.Version=...".
var Version = "dev"

// usageError marks a mistake in how the command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// globals are the flags every command shares.
type globals struct {
	url, token, dataDir, namespace string
	stdout, stderr                 io.Writer
	stdin                          io.Reader
}

// Run executes the command line args (without the program name).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin}
	root := &cobra.Command{
		Use:           "nimbus",
		Short:         "nimbus runs functions: one binary for the gateway, the controller and the CLI",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", "", "nimbus URL (default: $NIMBUS_URL, then the local nimbus's)")
	pf.StringVar(&g.token, "token", "", "admin token (default: $NIMBUS_TOKEN, then the data dir's)")
	pf.StringVar(&g.dataDir, "data-dir", server.DefaultDataDir(), "nimbus data directory")
	pf.StringVarP(&g.namespace, "namespace", "n", "", "function namespace (default \"default\")")

	root.AddCommand(upCmd(g), newCmd(g), deployCmd(g), listCmd(g), describeCmd(g), invokeCmd(g), versionsCmd(g), publishCmd(g),
		logsCmd(g), scaleCmd(g), deleteCmd(g), versionCmd(g), watchdogCmd(g), dlqCmd(g), callsCmd(g), triggerCmd(g), keysCmd(g))
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "Error:", explain(err))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// wrapArgs turns argument-count errors into usage errors.
func wrapArgs(c *cobra.Command) {
	if c.Args == nil {
		return
	}
	check := c.Args
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w\nusage: %s", err, cmd.UseLine())}
		}
		return nil
	}
}

func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag")
}

// explain turns an API error into a sentence with a next step.
func explain(err error) string {
	var ae *client.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	switch ae.Code {
	case "unauthorized":
		return ae.Message + "\nnext: pass --token, set NIMBUS_TOKEN, or run on the machine where 'nimbus up' keeps its data dir"
	case "function_not_found":
		return ae.Message + "\nnext: 'nimbus list' shows the deployed functions"
	case "invalid_spec":
		return ae.Message + "\nnext: fix the field in nimbus.yaml and deploy again"
	}
	return ae.Message
}

// client resolves the URL and token: flags, then environment, then the data dir.
func (g *globals) client() (*client.Client, error) { return g.clientOr("") }

// clientOr is client with a URL to use before the data dir's (a stack
// file's provider gateway).
func (g *globals) clientOr(fallbackURL string) (*client.Client, error) {
	url, token := g.url, g.token
	if url == "" {
		url = os.Getenv("NIMBUS_URL")
	}
	if url == "" {
		url = fallbackURL
	}
	if token == "" {
		token = os.Getenv("NIMBUS_TOKEN")
	}
	if url == "" {
		b, err := os.ReadFile(filepath.Join(g.dataDir, server.URLFile))
		if err != nil {
			return nil, fmt.Errorf("no nimbus URL: start one with 'nimbus up', or pass --url / set NIMBUS_URL")
		}
		url = strings.TrimSpace(string(b))
	}
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(g.dataDir, server.TokenFile)); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	return &client.Client{URL: url, Token: token}, nil
}

func (g *globals) ns() string { return g.namespace }

// forEach runs do for each argument in turn, saying "VERB ARG" after each;
// it stops at the first error, naming the argument.
func forEach(cmd *cobra.Command, g *globals, args []string, verb string, do func(*client.Client, context.Context, string) error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	for _, arg := range args {
		if err := do(cl, cmd.Context(), arg); err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		fmt.Fprintf(g.stdout, "%s %s\n", verb, arg)
	}
	return nil
}
