package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/calls"
	"nimbus/internal/client"
)

func callsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "calls",
		Short: "Look up call records: how each sync and async invocation ended",
	}
	var output, fn string
	var limit int
	list := &cobra.Command{
		Use:   "list [--function NAME] [--limit N]",
		Short: "List recent calls, most recent first",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if limit < 1 || limit > 1000 {
				return usagef("--limit must be from 1 to 1000")
			}
			return nil
		},
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, _ []string) ([]calls.Record, error) {
			ns := g.ns()
			if fn == "" && g.namespace == "" {
				ns = "" // every namespace's
			}
			return cl.Calls(ctx, ns, fn, limit)
		}, func(tw *tabwriter.Writer, list []calls.Record) {
			fmt.Fprintln(tw, "CALL ID\tFUNCTION\tMODE\tSTATE\tSTATUS\tATTEMPTS\tSTART\tDURATION\tERROR")
			for _, r := range list {
				fmt.Fprintf(tw, "%s\t%s.%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.CallID, r.Function, r.Namespace, r.Mode, r.State,
					r.Status, r.Attempts, r.Start.Local().Format(time.RFC3339), seconds(r.Duration), firstLine(r.Error, 50))
			}
		}),
	}
	list.Flags().StringVar(&fn, "function", "", "only this function's calls")
	list.Flags().IntVar(&limit, "limit", 50, "how many to show (at most 1000)")
	addOutput(list, &output)
	var getOutput string
	get := &cobra.Command{
		Use:   "get CALL_ID",
		Short: "Show one call",
		Args:  cobra.ExactArgs(1),
		RunE: readRun(g, &getOutput, func(ctx context.Context, cl *client.Client, args []string) (calls.Record, error) {
			return cl.Call(ctx, args[0])
		}, func(tw *tabwriter.Writer, r calls.Record) {
			fmt.Fprintf(tw, "Call ID:\t%s\nFunction:\t%s.%s\nMode:\t%s\nState:\t%s\nStatus:\t%d\nAttempts:\t%d\nStart:\t%s\nDuration:\t%s\n",
				r.CallID, r.Function, r.Namespace, r.Mode, r.State, r.Status, r.Attempts,
				r.Start.Local().Format(time.RFC3339Nano), seconds(r.Duration))
			if r.Error != "" {
				fmt.Fprintf(tw, "Error:\t%s\n", r.Error)
			}
			if r.Callback != "" {
				fmt.Fprintf(tw, "Callback:\t%s\n", r.Callback)
			}
		}),
	}
	addOutput(get, &getOutput)
	c.AddCommand(list, get)
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
	return c
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}
