package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/client"
	"nimbus/internal/queue"
)

func dlqCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and handle dead letters: async invocations out of attempts or past their maximum age",
	}
	var output, fn string
	list := &cobra.Command{
		Use:   "list [--function NAME]",
		Short: "List dead letters",
		Args:  cobra.NoArgs,
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, _ []string) ([]queue.DeadLetter, error) {
			return cl.DeadLetters(ctx, g.ns(), fn)
		}, func(tw *tabwriter.Writer, list []queue.DeadLetter) {
			fmt.Fprintln(tw, "CALL ID\tFUNCTION\tATTEMPTS\tSTATUS\tLAST ATTEMPT\tERROR")
			for _, d := range list {
				fmt.Fprintf(tw, "%s\t%s.%s\t%d\t%d\t%s\t%s\n", d.CallID, d.Function, d.Namespace, d.Attempts, d.LastStatus,
					d.LastTry.Local().Format(time.RFC3339), firstLine(d.Error, 60))
			}
		}),
	}
	list.Flags().StringVar(&fn, "function", "", "only this function's")
	addOutput(list, &output)
	var showOutput string
	show := &cobra.Command{
		Use:   "show CALL_ID",
		Short: "Show a dead letter with its payload",
		Args:  cobra.ExactArgs(1),
		RunE: readRun(g, &showOutput, func(ctx context.Context, cl *client.Client, args []string) (queue.DeadLetter, error) {
			return cl.DeadLetter(ctx, args[0])
		}, func(tw *tabwriter.Writer, d queue.DeadLetter) {
			fmt.Fprintf(tw, "Call ID:\t%s\nFunction:\t%s.%s\nAttempts:\t%d\nLast status:\t%d\nError:\t%s\nEnqueued:\t%s\nLast attempt:\t%s\nRequest:\t%s %s\nBody:\t%d bytes\n",
				d.CallID, d.Function, d.Namespace, d.Attempts, d.LastStatus, d.Error,
				d.Enqueued.Local().Format(time.RFC3339), d.LastTry.Local().Format(time.RFC3339),
				d.Message.Method, d.Message.Path, len(d.Message.Body))
		}),
	}
	addOutput(show, &showOutput)
	redrive := &cobra.Command{
		Use:   "redrive CALL_ID...",
		Short: "Queue dead letters' invocations again (fresh attempts) and remove them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEach(cmd, g, args, "Redriven", (*client.Client).Redrive)
		},
	}
	purge := &cobra.Command{
		Use:   "purge CALL_ID...",
		Short: "Remove dead letters",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEach(cmd, g, args, "Purged", (*client.Client).PurgeDeadLetter)
		},
	}
	c.AddCommand(list, show, redrive, purge)
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
	return c
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}
