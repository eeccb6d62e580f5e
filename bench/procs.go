package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// buildAll builds the programs the benchmark runs into dir.
func buildAll(dir string) (fn, rproxy, nimbus string, err error) {
	fn, rproxy, nimbus = filepath.Join(dir, "fn"), filepath.Join(dir, "rproxy"), filepath.Join(dir, "nimbus")
	for out, pkg := range map[string]string{fn: "nimbus/bench/fn", rproxy: "nimbus/bench/rproxy", nimbus: "nimbus/cmd/nimbus"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", "", "", fmt.Errorf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return fn, rproxy, nimbus, nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers 200.
func waitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Post(url, "text/plain", strings.NewReader("hello\n"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, within)
}

// cpuTime is a process's own user+system time (not its children's).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14 overall
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15 overall
	const hz = 100                              // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}

// startProc runs a program in the background with the given environment.
func startProc(env []string, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd, cmd.Start()
}

func stopProc(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// workDir makes the run's temporary directory. As root, functions run as
// users of their own, who must pass through it to their directories under
// nimbus's data dir: it is 0711.
func workDir() (string, error) {
	tmp, err := os.MkdirTemp("", "nimbus-bench-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o711); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}
