// Package static runs the checks that are not tests of behaviour: go vet on
// the whole module and the race detector on the packages with the most
// concurrency (gateway, drivers, store, the async queue and dispatcher, call
// records, triggers, events, the controller). -short skips them.
package static

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func run(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root()
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
}

func TestVet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: go vet skipped")
	}
	run(t, "vet", "./...")
}

func TestRace(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: race detector run skipped")
	}
	run(t, "test", "-race", "-count=1", "./internal/gateway/...", "./internal/driver/...", "./internal/store/...",
		"./internal/async/...", "./internal/queue/...", "./internal/calls/...", "./internal/trigger/...", "./internal/events/...",
		"./internal/controller/...", "./internal/provider/...", "./internal/scaler/...", "./internal/autoscaler/...")
}
