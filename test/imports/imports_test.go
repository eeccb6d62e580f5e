// Package imports checks the import rules of the design (DESIGN.md §7, kept
// in docs/ARCHITECTURE.md): the domain package needs nothing, interfaces need
// only the domain, components never import a backend, and only the server
// package chooses implementations.
package imports

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const mod = "nimbus/"

// backends are implementations; only internal/server may import them.
var backends = []string{"nimbus/internal/scaler/natscluster", "nimbus/internal/store/natsstore", "nimbus/internal/queue/natsqueue", "nimbus/internal/calls/natscalls", "nimbus/internal/trigger/nattrigger", "nimbus/internal/events/natsevents", "nimbus/internal/driver/process", "nimbus/internal/driver/docker", "nimbus/internal/provider/kube", "nimbus/internal/backbone"}

// sdks are the libraries only backends (and the wiring) may touch.
var sdks = []string{"github.com/nats-io/", "github.com/moby/", "github.com/containerd/", "k8s.io/"}

// rules: for packages with this prefix, every project import must be one of
// allowed (prefix match). stdlib-only packages allow nothing.
var rules = map[string][]string{
	"nimbus/internal/function":                   {},
	"nimbus/internal/archive":                    {},
	"nimbus/internal/store":                      {"nimbus/internal/function"},
	"nimbus/internal/driver":                     {"nimbus/internal/function"},
	"nimbus/internal/store/natsstore":            {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/store/storetest":            {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/driver/process":             {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/archive", "nimbus/internal/watchdog"},
	"nimbus/internal/driver/docker":              {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/watchdog"},
	"nimbus/internal/watchdog":                   {},
	"nimbus/internal/driver/drivertest":          {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/archive", "nimbus/internal/watchdog"},
	"nimbus/internal/backbone":                   {},
	"nimbus/cmd/nimbus":                          {"nimbus/internal/cli"},
	"nimbus/cmd/nimbus-watchdog":                 {"nimbus/internal/watchdogcmd"},
	"nimbus/internal/watchdogcmd":                {"nimbus/internal/watchdog", "nimbus/internal/archive"},
	"nimbus/internal/ociimage":                   {},
	"nimbus/internal/images":                     {"nimbus/internal/ociimage"},
	"nimbus/internal/fetchtoken":                 {},
	"nimbus/deploy/images":                       {"nimbus/internal/images"},
	"nimbus/internal/controller":                 {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/gateway":                    {"nimbus/internal/store", "nimbus/internal/provider", "nimbus/internal/autoscaler", "nimbus/internal/function", "nimbus/internal/calls", "nimbus/internal/reqbody", "nimbus/internal/series"},
	"nimbus/internal/series":                     {},
	"nimbus/internal/ui":                         {},
	"nimbus/internal/sigv4":                      {},
	"nimbus/internal/lambdaapi":                  {"nimbus/internal/store", "nimbus/internal/function", "nimbus/internal/sigv4", "nimbus/internal/archive", "nimbus/internal/versions", "nimbus/internal/watchdog"},
	"nimbus/internal/autoscaler":                 {"nimbus/internal/function"},
	"nimbus/internal/provider":                   {"nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/store"},
	"nimbus/internal/provider/kube":              {"nimbus/internal/provider", "nimbus/internal/function", "nimbus/internal/store", "nimbus/internal/provider/providertest", "nimbus/internal/provider/kube/kubetest"},
	"nimbus/internal/provider/kube/kubetest":     {"nimbus/internal/ociimage", "nimbus/internal/images"},
	"nimbus/internal/provider/providertest":      {"nimbus/internal/provider", "nimbus/internal/function", "nimbus/internal/driver/drivertest"},
	"nimbus/internal/scaler":                     {"nimbus/internal/autoscaler", "nimbus/internal/provider", "nimbus/internal/function", "nimbus/internal/store"},
	"nimbus/internal/scaler/natscluster":         {"nimbus/internal/scaler"},
	"nimbus/internal/scaler/clustertest":         {"nimbus/internal/scaler", "nimbus/internal/autoscaler"},
	"nimbus/internal/scaler/scalertest":          {"nimbus/internal/scaler", "nimbus/internal/gateway", "nimbus/internal/provider", "nimbus/internal/driver", "nimbus/internal/function", "nimbus/internal/store"},
	"nimbus/internal/queue":                      {},
	"nimbus/internal/calls":                      {},
	"nimbus/internal/calls/natscalls":            {"nimbus/internal/calls"},
	"nimbus/internal/outbound":                   {},
	"nimbus/internal/reqbody":                    {},
	"nimbus/internal/trigger":                    {"nimbus/internal/function", "nimbus/internal/queue", "nimbus/internal/calls", "nimbus/internal/trigger"},
	"nimbus/internal/trigger/nattrigger":         {"nimbus/internal/trigger"},
	"nimbus/internal/events":                     {"nimbus/internal/function", "nimbus/internal/queue", "nimbus/internal/calls", "nimbus/internal/gateway", "nimbus/internal/reqbody", "nimbus/internal/lambdaclient"},
	"nimbus/internal/lambdaclient":               {},
	"nimbus/internal/versions":                   {"nimbus/internal/store", "nimbus/internal/function"},
	"nimbus/internal/events/natsevents":          {"nimbus/internal/events"},
	"nimbus/internal/queue/natsqueue":            {"nimbus/internal/queue"},
	"nimbus/internal/async":                      {"nimbus/internal/queue", "nimbus/internal/gateway", "nimbus/internal/function", "nimbus/internal/store", "nimbus/internal/calls", "nimbus/internal/reqbody"},
	"nimbus/internal/openfaas":                   {"nimbus/internal/store", "nimbus/internal/gateway", "nimbus/internal/function", "nimbus/internal/reqbody"},
	"nimbus/internal/apiserver":                  {"nimbus/internal/store", "nimbus/internal/gateway", "nimbus/internal/scaler", "nimbus/internal/function", "nimbus/internal/openfaas", "nimbus/internal/queue", "nimbus/internal/calls", "nimbus/internal/trigger", "nimbus/internal/events", "nimbus/internal/reqbody", "nimbus/internal/archive", "nimbus/internal/series", "nimbus/internal/versions", "nimbus/internal/fetchtoken"},
	"nimbus/internal/client":                     {"nimbus/internal/apiserver", "nimbus/internal/gateway", "nimbus/internal/store", "nimbus/internal/function", "nimbus/internal/queue", "nimbus/internal/calls", "nimbus/internal/trigger"},
	"nimbus/internal/cli":                        {"nimbus/internal/client", "nimbus/internal/apiserver", "nimbus/internal/gateway", "nimbus/internal/queue", "nimbus/internal/server", "nimbus/internal/outbound", "nimbus/internal/calls", "nimbus/internal/trigger", "nimbus/internal/store", "nimbus/internal/function", "nimbus/internal/archive", "nimbus/internal/watchdog", "nimbus/internal/watchdogcmd", "nimbus/internal/openfaas"},
	"nimbus/internal/driver/drivertest/testfn":   {},
	"nimbus/internal/driver/drivertest/lambdafn": {},
}

// packageImports reads the imports of every non-test Go file of the module
// with go/parser, so the test cache knows the files this test depends on.
func packageImports(t *testing.T) map[string][]string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	pkgs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "examples") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := strings.TrimSuffix(mod+filepath.ToSlash(rel), "/.")
		if _, ok := pkgs[pkg]; !ok {
			pkgs[pkg] = nil
		}
		for _, imp := range f.Imports {
			pkgs[pkg] = append(pkgs[pkg], strings.Trim(imp.Path.Value, `"`))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	seen := 0
	for pkg, imports := range packageImports(t) {
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
			// kubetest's job is a cluster for the kube backend's tests.
			if !isBackend && hasPrefix(sdks, imp) && pkg != "nimbus/internal/backbone" && pkg != "nimbus/internal/provider/kube/kubetest" {
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
	if seen < 15 {
		t.Fatalf("only %d packages checked: the walk looks wrong", seen)
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

// TestBinaryLinksNoHeavyClient: the nimbus binary, which is also the
// watchdog in function containers as small as 6 MB, links no AWS service
// client: their package state alone grows every process by megabytes
// (aws-sdk-go-v2's Lambda client by 4 MB, which killed the watchdog in
// the faas-cli test's container). Transitive imports, with go list -deps.
func TestBinaryLinksNoHeavyClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "nimbus/cmd/nimbus").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/aws/aws-sdk-go-v2/service/") {
			t.Errorf("cmd/nimbus links %s: sign requests with aws-sdk-go-v2/aws/signer/v4 and build them instead (see internal/lambdaclient)", pkg)
		}
		// client-go's clientset and informers link every API group's
		// types and clients (+35 MB of binary, +20 MB of memory at the
		// start of every nimbus process, the watchdog's included).
		if pkg == "k8s.io/client-go/kubernetes" || pkg == "k8s.io/client-go/kubernetes/scheme" || pkg == "k8s.io/client-go/informers" {
			t.Errorf("cmd/nimbus links %s: use the REST client over a scheme of the groups needed (see internal/provider/kube/api.go)", pkg)
		}
	}
}

// TestWatchdogBinaryIsSmall: nimbus-watchdog, the build for function
// images, links the watchdog, its command line and the package unpacker
// alone (the standard library, cobra), none of the platform.
func TestWatchdogBinaryIsSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "nimbus/cmd/nimbus-watchdog").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "nimbus/cmd/nimbus-watchdog", pkg == "nimbus/internal/watchdogcmd", pkg == "nimbus/internal/watchdog", pkg == "nimbus/internal/archive",
			strings.HasPrefix(pkg, "github.com/spf13/"), strings.HasPrefix(pkg, "vendor/"):
		default:
			t.Errorf("cmd/nimbus-watchdog links %s: it must stay the watchdog alone", pkg)
		}
	}
}
