// Package e2e tests the built nimbus binary from the outside: it runs
// `nimbus up` on a free loopback port with a temporary data dir, drives the
// CLI, and invokes functions over HTTP.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds cmd/nimbus once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nimbus-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nimbus")
		out, err := exec.Command("go", "build", "-o", binPath, "nimbus/cmd/nimbus").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build nimbus: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// nimbus is one running `nimbus up`.
type nimbus struct {
	t       *testing.T
	bin     string
	dataDir string
	addr    string
	URL     string
	Events  string // the events API, from the banner
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs `nimbus up` and waits until it prints its URL.
func start(t *testing.T, dataDir string, extra ...string) *nimbus {
	t.Helper()
	n := &nimbus{t: t, bin: binary(t), dataDir: dataDir, addr: freeAddr(t), out: &syncBuffer{}, exited: make(chan struct{})}
	n.launch(extra...)
	t.Cleanup(func() { n.shutdown() })
	return n
}

func (n *nimbus) launch(extra ...string) {
	t := n.t
	args := append([]string{"up", "--listen", n.addr, "--data-dir", n.dataDir}, extra...)
	if !slices.Contains(extra, "--events-listen") {
		args = append(args, "--events-listen", "127.0.0.1:0") // tests run side by side
	}
	registerDataDir(n.dataDir)
	n.cmd = exec.Command(n.bin, args...)
	n.cmd.Env = testEnv()
	pr, pw := io.Pipe()
	n.cmd.Stdout = io.MultiWriter(n.out, pw)
	n.cmd.Stderr = n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); pw.Close(); close(n.exited) }()
	found := make(chan string, 1)
	go func() {
		// The banner ends with the "try:" line; report the URL after it, so
		// that everything the banner says is in n.out.
		url := ""
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "is up at "); i >= 0 {
				url = strings.TrimSpace(sc.Text()[i+len("is up at "):])
			}
			if url != "" && strings.Contains(sc.Text(), "try:") {
				found <- url
				url = ""
			}
		}
	}()
	select {
	case n.URL = <-found:
		registerOwner(n.dataDir)
		if out := n.out.String(); strings.Contains(out, "events API:") { // this start's banner is the last
			n.Events = strings.Fields(out[strings.LastIndex(out, "events API:")+len("events API:"):])[0]
		}
	case <-n.exited:
		t.Fatalf("nimbus up exited early:\n%s", n.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("nimbus up did not start within 30s:\n%s", n.out)
	}
}

// testEnv is the environment for nimbus and the CLI: the test's own, minus
// anything that would point the CLI elsewhere.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIMBUS_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and returns the exit code.
func (n *nimbus) stop() int {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		n.t.Fatalf("nimbus did not exit within 60s of SIGTERM:\n%s", n.out)
	}
	return n.cmd.ProcessState.ExitCode()
}

// shutdown ends nimbus as an operator would, with SIGTERM, so that it stops
// what it started (its containers, its network); SIGKILL only if it hangs.
func (n *nimbus) shutdown() {
	if n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(60 * time.Second):
		n.t.Errorf("nimbus did not exit within 60s of SIGTERM; killing it")
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// cli runs a nimbus CLI command against this nimbus; it returns stdout,
// stderr and the exit code.
func (n *nimbus) cli(args ...string) (string, string, int) {
	n.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(n.bin, append(args, "--data-dir", n.dataDir)...)
	cmd.Env = testEnv()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		n.t.Fatalf("nimbus %v did not finish", args)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// mustCLI runs a command that must succeed.
func (n *nimbus) mustCLI(args ...string) string {
	n.t.Helper()
	out, errOut, code := n.cli(args...)
	if code != 0 {
		n.t.Fatalf("nimbus %s: exit %d\nstdout: %s\nstderr: %s\nserver:\n%s", strings.Join(args, " "), code, out, errOut, n.out)
	}
	return out
}

// invoke calls a function over HTTP.
func (n *nimbus) invoke(method, path, body string, hdr ...string) (int, string, http.Header) {
	n.t.Helper()
	req, _ := http.NewRequest(method, n.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// copyExample copies examples/NAME to a temporary directory, so builds do
// not write into the repository.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	src := filepath.Join(repoRoot(), "examples", name)
	os.MkdirAll(filepath.Dir(dst), 0o755)
	out, err := exec.Command("cp", "-r", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("copy %s: %v %s", name, err, out)
	}
	return dst
}

func need(t *testing.T, program string) {
	if _, err := exec.LookPath(program); err != nil {
		t.Skipf("%s is not installed on this machine; install it to run this test", program)
	}
}

// dataDir is a data dir for one nimbus: its parents let other users
// through, as functions running as users of their own need (t.TempDir's
// parent is private). It is removed when the test ends.
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nimbus-e2e-data-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
