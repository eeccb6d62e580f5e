package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func invokeCmd(g *globals) *cobra.Command {
	var data, method, path string
	var headers []string
	var include bool
	c := &cobra.Command{
		Use:   "invoke NAME [-d DATA|@FILE|@-] [-H K:V]",
		Short: "Call a function and print its response",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hdr := http.Header{}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return usagef("-H %q: write a header as Key:Value", h)
				}
				hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			var body io.Reader
			switch {
			case data == "@-":
				body = g.stdin
			case strings.HasPrefix(data, "@"):
				f, err := os.Open(data[1:])
				if err != nil {
					return fmt.Errorf("-d %s: %w", data, err)
				}
				defer f.Close()
				body = f
			case data != "":
				body = strings.NewReader(data)
			}
			if method == "" {
				method = "GET"
				if body != nil {
					method = "POST"
				}
			}
			if path != "" && !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			resp, err := cl.Invoke(cmd.Context(), g.ns(), args[0], method, path, body, hdr)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if include {
				fmt.Fprintf(g.stdout, "%s %s\n", resp.Proto, resp.Status)
				resp.Header.Write(g.stdout)
				fmt.Fprintln(g.stdout)
			}
			if _, err := io.Copy(g.stdout, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode >= 400 {
				return fmt.Errorf("the function answered %s (call id %s); 'nimbus logs %s' shows its output", resp.Status, resp.Header.Get("X-Call-Id"), args[0])
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&data, "data", "d", "", "request body, @FILE to read a file, @- for stdin")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header as Key:Value (repeatable)")
	f.StringVarP(&method, "method", "X", "", "HTTP method (default GET, or POST with a body)")
	f.StringVar(&path, "path", "", "path below the function, e.g. /items?id=1")
	f.BoolVarP(&include, "include", "i", false, "print the response status and headers")
	return c
}
