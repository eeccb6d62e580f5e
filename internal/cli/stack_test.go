package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadStack(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "env.yml", "environment:\n  FROM_FILE: \"1\"\n  OVERRIDE: file\n")
	p := writeFile(t, dir, "stack.yml", `version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:31112
functions:
  hello:
    lang: golang-http
    handler: ./hello
    image: ghcr.io/you/hello:1.0
    fprocess: ./handler
    environment:
      OVERRIDE: inline
    environment_file:
      - env.yml
    secrets: [api-key]
    labels:
      com.openfaas.scale.min: "2"
    annotations:
      topic: orders
    limits:
      memory: 128Mi
      cpu: 200m
    requests:
      memory: 64Mi
    readonly_root_filesystem: true
    namespace: team
  bye:
    image: ghcr.io/you/bye:1.0
configuration:
  templates:
    - name: golang-http
`)
	gw, fns, err := readStack(p)
	if err != nil {
		t.Fatal(err)
	}
	if gw != "http://127.0.0.1:31112" || len(fns) != 2 || fns[0].Name != "bye" {
		t.Fatalf("gateway %q, functions %+v", gw, fns)
	}
	h := fns[1]
	if h.Image != "ghcr.io/you/hello:1.0" || h.Namespace != "team" || h.Env["fprocess"] != "./handler" ||
		h.Env["FROM_FILE"] != "1" || h.Env["OVERRIDE"] != "inline" || h.Secrets[0] != "api-key" ||
		h.Scale.Min != 2 || h.Limits.CPU != "200m" || h.Requests.Memory != "64Mi" || !h.ReadOnlyRootFilesystem ||
		h.Annotations["topic"] != "orders" || h.Runtime != "" /* the server's image runtime */ {
		t.Fatalf("hello mapped wrong: %+v", h)
	}
}

func TestReadStackRejects(t *testing.T) {
	cases := map[string]string{
		"colour":       "functions:\n  a:\n    image: x\n    colour: red\n",
		"gatewy":       "provider:\n  gatewy: http://x\nfunctions:\n  a:\n    image: x\n",
		"no functions": "version: 1.0\n",
		"image":        "functions:\n  a:\n    lang: go\n",
		"Bad_Name":     "functions:\n  Bad_Name:\n    image: x\n",
		"memory":       "functions:\n  a:\n    image: x\n    limits:\n      memory: lots\n",
	}
	for want, body := range cases {
		dir := t.TempDir()
		_, _, err := readStack(writeFile(t, dir, "stack.yml", body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}
