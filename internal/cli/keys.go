package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/client"
	"nimbus/internal/store"
)

func keysCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "keys",
		Short: "Access keys for the AWS-shaped APIs (AWS Signature Version 4)",
		Long: `An access key signs requests to nimbus's AWS-shaped APIs as AWS SDKs and the
aws CLI sign them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). A key acts only
in the namespaces it names ("*": every one). Its secret is shown once, when it
is created.`,
	}
	var namespaces []string
	var description string
	create := &cobra.Command{
		Use:     "create [--namespaces NS,...] [--description TEXT]",
		Short:   "Create an access key; its secret is shown once",
		Example: "  nimbus keys create --namespaces default,team-a --description ci\n  nimbus keys create --namespaces '*'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(namespaces) == 0 {
				namespaces = []string{g.ns()}
				if namespaces[0] == "" {
					namespaces[0] = "default"
				}
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			k, err := cl.CreateKey(cmd.Context(), namespaces, description)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Created access key %s for namespaces %s.\n", k.ID, strings.Join(k.Namespaces, ", "))
			fmt.Fprintf(g.stdout, "Its secret, shown only now:\n\n  AWS_ACCESS_KEY_ID=%s\n  AWS_SECRET_ACCESS_KEY=%s\n", k.ID, k.Secret)
			return nil
		},
	}
	create.Flags().StringSliceVar(&namespaces, "namespaces", nil, `namespaces the key may act in ("*": every one; default: --namespace, else default)`)
	create.Flags().StringVar(&description, "description", "", "what the key is for")
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List access keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, _ []string) ([]store.AccessKey, error) {
			return cl.Keys(ctx)
		}, func(tw *tabwriter.Writer, list []store.AccessKey) {
			fmt.Fprintln(tw, "ID\tNAMESPACES\tCREATED\tDESCRIPTION")
			for _, k := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, strings.Join(k.Namespaces, ","), k.Created.Format(time.RFC3339), k.Description)
			}
		}),
	}
	addOutput(list, &output)
	del := &cobra.Command{
		Use:   "delete ID...",
		Short: "Delete access keys",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEach(cmd, g, args, "Deleted access key", func(cl *client.Client, ctx context.Context, id string) error {
				return cl.DeleteKey(ctx, id)
			})
		},
	}
	c.AddCommand(create, list, del)
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
	return c
}
