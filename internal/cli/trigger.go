package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"nimbus/internal/client"
	"nimbus/internal/function"
	"nimbus/internal/trigger"
)

func triggerCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "trigger",
		Short: "Run functions on a cron schedule",
		Long: `A trigger queues an async invocation of its function at each time of its
schedule, once, even across restarts. After downtime, only the latest missed
time fires, and only if it is at most an hour old; earlier misses are skipped.`,
	}
	var t trigger.Trigger
	var data string
	create := &cobra.Command{
		Use:   "create NAME --schedule CRON --function FN [-d DATA|@FILE]",
		Short: "Create or replace a trigger",
		Example: `  nimbus trigger create nightly --schedule "0 3 * * *" --function report -d '{"kind":"daily"}'
  nimbus trigger create poll --schedule "@every 30s" --function poller`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t.Name, t.Namespace = args[0], g.ns()
			if t.Namespace == "" {
				t.Namespace = function.DefaultNamespace
			}
			switch {
			case strings.HasPrefix(data, "@"):
				b, err := os.ReadFile(data[1:])
				if err != nil {
					return fmt.Errorf("-d %s: %w", data, err)
				}
				t.Body = string(b)
			default:
				t.Body = data
			}
			if err := t.Validate(); err != nil {
				return usagef("%v", err)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			out, created, err := cl.PutTrigger(cmd.Context(), t)
			if err != nil {
				return err
			}
			verb := "Updated"
			if created {
				verb = "Created"
			}
			fmt.Fprintf(g.stdout, "%s trigger %s: %q → %s\n", verb, out.Name, out.Schedule, out.Function)
			return nil
		},
	}
	create.Flags().StringVar(&t.Schedule, "schedule", "", `cron schedule: "MIN HOUR DOM MON DOW", @hourly, @every 30s (UTC unless CRON_TZ=Area/City)`)
	create.Flags().StringVar(&t.Function, "function", "", "function to invoke")
	create.Flags().StringVar(&t.Path, "path", "", "path below the function (default /)")
	create.Flags().StringVarP(&data, "data", "d", "", "request body, or @FILE")
	create.Flags().StringVar(&t.ContentType, "content-type", "", "Content-Type of the body (default text/plain)")
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List triggers",
		Args:  cobra.NoArgs,
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, _ []string) ([]trigger.Trigger, error) {
			return cl.Triggers(ctx, g.namespace) // "" lists every namespace
		}, func(tw *tabwriter.Writer, list []trigger.Trigger) {
			fmt.Fprintln(tw, "NAME\tNAMESPACE\tSCHEDULE\tFUNCTION\tPATH")
			for _, t := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Namespace, t.Schedule, t.Function, t.Path)
			}
		}),
	}
	addOutput(list, &output)
	del := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete triggers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEach(cmd, g, args, "Deleted trigger", func(cl *client.Client, ctx context.Context, name string) error {
				return cl.DeleteTrigger(ctx, g.ns(), name)
			})
		},
	}
	c.AddCommand(create, list, del)
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
	return c
}
