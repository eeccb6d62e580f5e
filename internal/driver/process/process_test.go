package process

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/driver/drivertest"
	"nimbus/internal/function"
	"nimbus/internal/provider/providertest"
)

func newDriver(t *testing.T, stateDir string) *Driver {
	t.Helper()
	d, err := New(Options{StateDir: stateDir, StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// fixture runs testfn's package as local processes of a driver of its own.
func fixture(t *testing.T) drivertest.Fixture {
	digest, open := drivertest.TestPackage(t)
	return drivertest.Fixture{
		Driver: newDriver(t, drivertest.StateDir(t)),
		Function: func(protocol string, args ...string) function.Function {
			return function.Function{Protocol: protocol, Command: append([]string{"./testfn"}, args...), Package: digest}
		},
		OpenPackage: open,
		Lambda: func(t *testing.T) (function.Function, func(context.Context, string) (io.ReadCloser, error)) {
			digest, open := drivertest.LambdaPackage(t)
			return function.Function{Command: []string{"./bootstrap"}, Package: digest}, open
		},
	}
}

func TestConformance(t *testing.T) { drivertest.Run(t, fixture(t)) }

func testSpec(t *testing.T, name string) driver.Spec {
	digest, open := drivertest.TestPackage(t)
	fn := function.Function{Name: name, Command: []string{"./testfn"}, Package: digest}.WithDefaults()
	return driver.Spec{Function: fn, OpenPackage: open}
}

// TestUnprivileged: run as root, functions run as nobody.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nimbus is not running as root here, so there is no privilege to drop")
	}
	d := newDriver(t, drivertest.StateDir(t))
	inst, err := d.Start(context.Background(), testSpec(t, "who"))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	_, body, err := drivertest.Call(inst, "GET", "/whoami", "")
	if err != nil || body == "0" || body == "" {
		t.Fatalf("function runs as uid %q (%v), want an unprivileged user", body, err)
	}
}

// TestReapKillsLeftovers: instances of a run that ended without stopping them
// are killed by the next run's Reap.
func TestReapKillsLeftovers(t *testing.T) {
	state := drivertest.StateDir(t)
	old, err := New(Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := old.Start(context.Background(), testSpec(t, "leftover"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(context.Background())
	pid := pidOf(t, state)
	// A new run on the same state directory, as after a kill -9.
	fresh := newDriver(t, state)
	if err := fresh.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("process %d survived Reap", pid)
	}
	if entries := records(state); len(entries) != 0 {
		t.Fatalf("records left after Reap: %v", entries)
	}
}

// records lists the process records in a state directory.
func records(state string) []string {
	entries, _ := os.ReadDir(state)
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pid") {
			out = append(out, e.Name())
		}
	}
	return out
}

func pidOf(t *testing.T, state string) int {
	entries := records(state)
	if len(entries) != 1 {
		t.Fatalf("want one record, got %d", len(entries))
	}
	b, _ := os.ReadFile(filepath.Join(state, entries[0]))
	pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("recorded process %d is not running: %v", pid, err)
	}
	return pid
}

// TestReapSparesOthers: a record whose PID now names another process does
// not kill that process.
func TestReapSparesOthers(t *testing.T) {
	state := drivertest.StateDir(t)
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	os.WriteFile(filepath.Join(state, "x.pid"), []byte(fmt.Sprintf("%d 1\n", cmd.Process.Pid)), 0o600)
	d := newDriver(t, state)
	d.Reap(context.Background())
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Fatal("Reap killed a process that was not nimbus's")
	}
}

func TestCommandNotInPath(t *testing.T) {
	d := newDriver(t, drivertest.StateDir(t))
	s := testSpec(t, "nopath")
	s.Function.Command = []string{"no-such-program-nimbus"}
	_, err := d.Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "PATH") {
		t.Fatalf("want an error about PATH, got %v", err)
	}
}

func TestStdioLargeOutputStreams(t *testing.T) {
	d, err := New(Options{StateDir: drivertest.StateDir(t), StdoutLimit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	s := testSpec(t, "big")
	s.Function.Protocol = function.ProtocolStdio
	s.Function.Command = []string{"./testfn", "stdio"}
	inst, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789", 10_000)
	code, body, err := drivertest.Call(inst, "POST", "/", big)
	if err != nil || code != 200 || body != big {
		t.Fatalf("large output: %d len=%d %v", code, len(body), err)
	}
}

// TestProviderConformance runs the provider suite on local processes.
func TestProviderConformance(t *testing.T) { providertest.RunLocal(t, fixture(t)) }
