package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/apiserver"
	"nimbus/internal/client"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/store"
)

func addOutput(c *cobra.Command, output *string) {
	c.Flags().StringVarP(output, "output", "o", "text", "output format: text or json")
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return usagef("--output must be text or json, not %q", o)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readRun is the RunE of a read command: it checks -o, fetches through the
// client, and prints what it got as JSON (-o json) or through table.
func readRun[T any](g *globals, output *string, fetch func(context.Context, *client.Client, []string) (T, error), table func(*tabwriter.Writer, T)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		v, err := fetch(cmd.Context(), cl, args)
		if err != nil {
			return err
		}
		if *output == "json" {
			return printJSON(g.stdout, v)
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		table(tw, v)
		return tw.Flush()
	}
}

func listCmd(g *globals) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "list",
		Short: "List functions",
		Args:  cobra.NoArgs,
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, _ []string) ([]apiserver.FunctionView, error) {
			return cl.List(ctx, g.ns())
		}, func(tw *tabwriter.Writer, fns []apiserver.FunctionView) {
			fmt.Fprintln(tw, "NAME\tNAMESPACE\tPROTOCOL\tREVISION\tREADY\tINVOCATIONS")
			for _, v := range fns {
				f := v.Function
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d/%d\t%d\n", f.Name, f.Namespace, f.Protocol, v.Revision,
					v.Status.ReadyInstances, v.Status.TotalInstances, v.Status.Invocations)
			}
		}),
	}
	addOutput(c, &output)
	return c
}

// description is what describe shows: a function and its instances.
type description struct {
	Function  apiserver.FunctionView   `json:"function"`
	Instances []gateway.InstanceStatus `json:"instances"`
}

func describeCmd(g *globals) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a function's spec, status and instances",
		Args:  cobra.ExactArgs(1),
		RunE: readRun(g, &output, func(ctx context.Context, cl *client.Client, args []string) (description, error) {
			v, err := cl.Get(ctx, g.ns(), args[0])
			if err != nil {
				return description{}, err
			}
			insts, err := cl.Instances(ctx, g.ns(), args[0])
			return description{v, insts}, err
		}, func(tw *tabwriter.Writer, d description) {
			v, insts := d.Function, d.Instances
			f, s := v.Function, v.Status
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("Name", f.Name)
			row("Namespace", f.Namespace)
			row("Revision", v.Revision)
			row("Updated", v.Updated.Local().Format(time.RFC3339))
			row("Runtime", f.Runtime)
			row("Protocol", f.Protocol)
			if f.Image != "" {
				row("Image", f.Image)
			} else {
				row("Command", strings.Join(f.Command, " "))
				row("Package", f.Package)
			}
			if l := f.Limits; l != (function.Resources{}) {
				row("Limits", describeResources(l, f.Runtime == function.RuntimeDocker))
			}
			if r := f.Requests; r != (function.Resources{}) {
				row("Requests", describeResources(r, false))
			}
			row("Timeout", f.Timeout)
			row("Scale", fmt.Sprintf("min %d, max %d, maxConcurrency %d, idleTimeout %s", f.Scale.Min, f.Scale.Max, f.Scale.MaxConcurrency, f.Scale.IdleTimeout))
			row("Target", fmt.Sprintf("%s %g per replica (%g × %g utilization), stable window %s, panic at %g×",
				f.Scale.Type, f.Scale.TargetValue(), f.Scale.TargetValue()/f.Scale.TargetUtilization, f.Scale.TargetUtilization, f.Scale.StableWindow, f.Scale.PanicThreshold))
			if sc := v.Scale; sc != nil {
				r := fmt.Sprintf("%d desired, %d ready, %d starting", sc.Desired, sc.Ready, sc.Starting)
				if sc.Floor > 0 {
					r += fmt.Sprintf(" (at least %d, as scaled)", sc.Floor)
				}
				row("Replicas", r)
				if sc.Reason != "" {
					d := sc.Reason
					if sc.Panic {
						d = "PANIC: " + d
					}
					row("Decision", fmt.Sprintf("%s (%s)", d, sc.DecidedAt.Local().Format(time.RFC3339)))
				}
				if sc.StartError != "" {
					e := sc.StartError
					if !sc.RetryAt.IsZero() {
						e += fmt.Sprintf("; next try at %s", sc.RetryAt.Local().Format(time.RFC3339))
					}
					row("Start error", e)
				}
			}
			row("Instances", fmt.Sprintf("%d ready, %d total", s.ReadyInstances, s.TotalInstances))
			row("Invocations", fmt.Sprintf("%d (%d failed, %d cold starts)", s.Invocations, s.Failures, s.ColdStarts))
			if s.LastError != "" {
				row("Last error", fmt.Sprintf("%s (%s)", s.LastError, s.LastErrorAt.Local().Format(time.RFC3339)))
			}
			for _, in := range insts {
				row("Instance", fmt.Sprintf("%s %s, %d in flight, %d served", in.ID, in.State, in.InFlight, in.Served))
			}
		}),
	}
	addOutput(c, &output)
	return c
}

// describeResources shows limits or requests, and a memory limit a
// container gets raised to the engine's minimum.
func describeResources(r function.Resources, container bool) string {
	var parts []string
	if r.Memory != "" {
		m := "memory " + r.Memory
		if b, raised := r.ContainerMemory(); container && raised {
			m += fmt.Sprintf(" (applied as %d MiB, the container engine's minimum)", b>>20)
		}
		parts = append(parts, m)
	}
	if r.CPU != "" {
		parts = append(parts, "cpu "+r.CPU)
	}
	return strings.Join(parts, ", ")
}

func logsCmd(g *globals) *cobra.Command {
	var output string
	var follow bool
	var since time.Duration
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a function's log lines",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if since < 0 {
				return usagef("--since must be positive")
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(g.stdout)
			return cl.Logs(cmd.Context(), g.ns(), args[0], since, follow, func(l store.LogLine) error {
				if output == "json" {
					return enc.Encode(l)
				}
				_, err := fmt.Fprintf(g.stdout, "%s %s %s %s\n", l.Time.Local().Format("2006-01-02T15:04:05.000"), shortID(l.Instance), l.Stream, l.Text)
				return err
			})
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	c.Flags().DurationVar(&since, "since", 0, "only lines newer than this (e.g. 10m)")
	addOutput(c, &output)
	return c
}

func shortID(id string) string {
	if id == "" {
		return "-"
	}
	return id
}

func scaleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "scale NAME REPLICAS",
		Short: "Keep at least REPLICAS instances of a function (0: leave it to the autoscaler), with no new revision",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return fmt.Errorf("REPLICAS %q is not a count: give a whole number from 0 to %d", args[1], function.MaxInstances)
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			v, err := cl.Scale(cmd.Context(), g.ns(), args[0], n)
			if err != nil {
				return err
			}
			if v.Scale != nil {
				fmt.Fprintf(g.stdout, "Scaled %s: %d desired, %d ready\n", args[0], v.Scale.Desired, v.Scale.Ready)
			}
			return nil
		},
	}
}

func deleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a function and stop its instances",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Delete(cmd.Context(), g.ns(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Deleted %s\n", args[0])
			return nil
		},
	}
}
