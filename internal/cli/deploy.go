package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/archive"
)

func deployCmd(g *globals) *cobra.Command {
	var output, stack string
	c := &cobra.Command{
		Use:   "deploy [DIR] | deploy -f stack.yml",
		Short: "Build, pack and upload the function in DIR (default .) as described by its nimbus.yaml, or deploy an OpenFaaS stack file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if stack != "" {
				if len(args) > 0 {
					return usagef("give a DIR or -f stack.yml, not both")
				}
				return deployStack(cmd, g, stack, output)
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			m, fn, err := readManifest(dir)
			if err != nil {
				return err
			}
			if g.namespace != "" {
				fn.Namespace = g.namespace
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			p := progress(g.stderr)
			if m.Build != "" {
				p("building: %s", m.Build)
				began := time.Now()
				if err := build(cmd, dir, m.Build, g.stderr); err != nil {
					return fmt.Errorf("build step %q failed: %w; fix the build and deploy again", m.Build, err)
				}
				p("built in %s", time.Since(began).Round(time.Millisecond))
			}
			if fn.Image == "" {
				var pkg bytes.Buffer
				st, err := archive.Pack(dir, &pkg)
				if err != nil {
					return fmt.Errorf("pack %s: %w", dir, err)
				}
				p("packed %d files, %s", st.Files, size(int64(pkg.Len())))
				digest, err := cl.UploadPackage(cmd.Context(), &pkg)
				if err != nil {
					return err
				}
				p("uploaded %s", digest[:19])
				fn.Package = digest
			} else {
				p("deploying image %s", fn.Image)
			}
			v, created, err := cl.Deploy(cmd.Context(), fn)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(g.stdout, v)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(g.stdout, "Deployed %s (%s, revision %d): %s/function/%s\n", fn.Key(), verb, v.Revision, cl.URL, route(fn.Name, fn.Namespace))
			return nil
		},
	}
	addOutput(c, &output)
	c.Flags().StringVarP(&stack, "file", "f", "", "an OpenFaaS stack file (stack.yml) whose functions' images to deploy")
	return c
}

// deployStack deploys every function of an OpenFaaS stack file. Images must
// exist already (built with docker build or faas-cli build); nimbus pulls
// them if the engine lacks them.
func deployStack(cmd *cobra.Command, g *globals, path, output string) error {
	gateway, fns, err := readStack(path)
	if err != nil {
		return err
	}
	cl, err := g.clientOr(gateway)
	if err != nil {
		return err
	}
	var views []any
	for _, fn := range fns {
		if g.namespace != "" {
			fn.Namespace = g.namespace
		}
		v, created, err := cl.Deploy(cmd.Context(), fn)
		if err != nil {
			return fmt.Errorf("function %s: %w", fn.Name, err)
		}
		views = append(views, v)
		if output != "json" {
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(g.stdout, "Deployed %s (%s, revision %d): %s/function/%s\n", v.Function.Key(), verb, v.Revision, cl.URL, route(v.Function.Name, v.Function.Namespace))
		}
	}
	if output == "json" {
		return printJSON(g.stdout, views)
	}
	return nil
}

// build runs a manifest's build step with sh in the function's directory.
// Its output goes to stderr so that stdout stays the command's result.
func build(cmd *cobra.Command, dir, script string, stderr io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c := exec.CommandContext(cmd.Context(), "sh", "-c", script)
	c.Dir = abs
	c.Stdout, c.Stderr = stderr, stderr
	c.Env = os.Environ()
	return c.Run()
}

// progress prints steps on a terminal and stays quiet otherwise.
func progress(w io.Writer) func(string, ...any) {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return func(format string, args ...any) { fmt.Fprintf(w, "→ "+format+"\n", args...) }
		}
	}
	return func(string, ...any) {}
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func route(name, ns string) string {
	if ns == "" || ns == "default" {
		return name
	}
	return name + "." + ns
}
