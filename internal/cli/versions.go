package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/apiserver"
	"nimbus/internal/client"
)

func versionsCmd(g *globals) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "versions NAME",
		Short: "List a function's published versions and aliases",
		Long: `A version is the function as it was when it was published (nimbus publish, or
the Lambda API's PublishVersion), run beside it as the function NAME--vN; it is
never updated. Aliases name versions (the Lambda API's CreateAlias).`,
		Args: cobra.ExactArgs(1),
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, args []string) (apiserver.VersionsView, error) {
			return cl.Versions(ctx, g.ns(), args[0])
		}, func(tw *tabwriter.Writer, v apiserver.VersionsView) {
			fmt.Fprintln(tw, "VERSION\tRUNS AS\tPUBLISHED\tALIASES")
			for _, ver := range v.Versions {
				names := ""
				for _, a := range v.Aliases {
					if a.Version == ver.Version {
						if names != "" {
							names += ","
						}
						names += a.Name
					}
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", ver.Version, ver.Name, ver.Created.Local().Format(time.RFC3339), names)
			}
		}),
	}
	addOutput(c, &output)
	return c
}

func publishCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "publish NAME",
		Short: "Publish a function as it is now as a numbered version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			v, created, err := cl.Publish(cmd.Context(), g.ns(), args[0])
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(g.stdout, "Published version %d of %s (runs as %s).\n", v.Version, args[0], v.Name)
			} else {
				fmt.Fprintf(g.stdout, "Version %d of %s is the function as it is now: nothing published.\n", v.Version, args[0])
			}
			return nil
		},
	}
}
