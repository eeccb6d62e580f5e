// Package imports checks the import rules of the design (DESIGN.md §7, kept
// in docs/ARCHITECTURE.md): the domain package needs nothing, interfaces need
// only the domain, components never import a backend, and only the server
// package chooses implementations.
package imports

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "nimbus/"

// backends are implementations; only internal/server may import them.
var backends = []string{"nimbus/internal/store/natsstore", "nimbus/internal/driver/process", "nimbus/internal/driver/docker", "nimbus/internal/backbone"}

// sdks are the libraries only backends (and the wiring) may touch.
var sdks = []string{"github.com/nats-io/", "github.com/moby/", "github.com/containerd/"}

// rules: for packages with this prefix, every project import must be one of
// allowed (prefix match). stdlib-only packages allow nothing.
var rules = map[string][]string{
	"nimbus/internal/function":                 {},
	"nimbus/internal/archive":                  {},
	"nimbus/internal/store":                    {"nimbus/internal/function"},
	"nimbus/internal/driver":                   {"nimbus/internal/function"},
	"nimbus/internal/store/natsstore":          {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/store/storetest":          {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/driver/process":           {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/archive", "nimbus/internal/watchdog"},
	"nimbus/internal/driver/docker":            {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/watchdog"},
	"nimbus/internal/watchdog":                 {},
	"nimbus/internal/driver/drivertest":        {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/archive"},
	"nimbus/internal/backbone":                 {},
	"nimbus/cmd/nimbus":                        {"nimbus/internal/cli"},
	"nimbus/internal/controller":               {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/gateway":                  {"nimbus/internal/store", "nimbus/internal/driver", "nimbus/internal/function"},
	"nimbus/internal/openfaas":                 {"nimbus/internal/store", "nimbus/internal/gateway", "nimbus/internal/function"},
	"nimbus/internal/apiserver":                {"nimbus/internal/store", "nimbus/internal/gateway", "nimbus/internal/function", "nimbus/internal/openfaas"},
	"nimbus/internal/client":                   {"nimbus/internal/apiserver", "nimbus/internal/gateway", "nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/cli":                      {"nimbus/internal/client", "nimbus/internal/server", "nimbus/internal/store", "nimbus/internal/function", "nimbus/internal/archive", "nimbus/internal/watchdog"},
	"nimbus/internal/driver/drivertest/testfn": {},
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "nimbus/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		if strings.HasPrefix(pkg, "nimbus/test/") || pkg == "nimbus/bench" || strings.HasPrefix(pkg, "nimbus/bench/") {
			continue // tests and benchmarks may reach anything
		}
		if pkg == "nimbus/internal/server" {
			seen++
			continue // the one wiring package
		}
		allowed, ok := rules[pkg]
		if !ok {
			t.Errorf("package %s has no import rule: add it to this test and to docs/ARCHITECTURE.md", pkg)
			continue
		}
		seen++
		isBackend := contains(backends, pkg)
		for _, imp := range imports {
			if !isBackend && hasPrefix(sdks, imp) && pkg != "nimbus/internal/backbone" {
				t.Errorf("%s imports the backend SDK %s: only backends may", pkg, imp)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			if contains(backends, imp) {
				t.Errorf("%s imports the backend %s: only internal/server chooses implementations", pkg, imp)
				continue
			}
			if !contains(allowed, imp) {
				t.Errorf("%s imports %s, which its rule does not allow (allowed: %v)", pkg, imp, allowed)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("only %d packages checked: go list output looks wrong:\n%s", seen, out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasPrefix(list []string, s string) bool {
	for _, x := range list {
		if strings.HasPrefix(s, x) {
			return true
		}
	}
	return false
}
