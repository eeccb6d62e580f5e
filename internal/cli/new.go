package cli

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"nimbus/internal/function"
)

//go:embed all:templates
var templates embed.FS

// languages lists the templates `nimbus new` offers.
func languages() []string {
	entries, _ := fs.ReadDir(templates, "templates")
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func newCmd(g *globals) *cobra.Command {
	var lang, dir string
	c := &cobra.Command{
		Use:   "new NAME --lang go|python|node|bash|lambda-node",
		Short: "Make a new function directory from a template",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := function.ValidateName("NAME", name); err != nil {
				return usageError{err}
			}
			if _, err := fs.Stat(templates, "templates/"+lang); lang == "" || err != nil {
				return usagef("--lang must be one of %s", strings.Join(languages(), ", "))
			}
			if dir == "" {
				dir = name
			}
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s already exists: choose another name or --dir", dir)
			}
			files, err := render(lang, name)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for rel, f := range files {
				if err := os.WriteFile(filepath.Join(dir, rel), f.data, f.mode); err != nil {
					return err
				}
			}
			next := ""
			if _, ok := files["package.json"]; ok {
				next = "(cd " + dir + " && npm install) && "
			}
			fmt.Fprintf(g.stdout, "Created %s (%s). Next: %snimbus deploy %s && nimbus invoke %s\n", dir, lang, next, dir, name)
			return nil
		},
	}
	c.Flags().StringVarP(&lang, "lang", "l", "", "language: "+strings.Join(languages(), ", "))
	c.Flags().StringVar(&dir, "dir", "", "directory to create (default NAME)")
	return c
}

type file struct {
	data []byte
	mode os.FileMode
}

// render fills in a template's files (named *.tmpl in the binary).
func render(lang, name string) (map[string]file, error) {
	root := "templates/" + lang
	out := map[string]file{}
	err := fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := templates.ReadFile(p)
		if err != nil {
			return err
		}
		t, err := template.New(path.Base(p)).Parse(string(src))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, struct{ Name string }{name}); err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".sh") || rel == "bootstrap" {
			mode = 0o755
		}
		out[rel] = file{buf.Bytes(), mode}
		return nil
	})
	return out, err
}
