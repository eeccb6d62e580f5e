package watchdog_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"nimbus/internal/driver/drivertest"
	"nimbus/internal/watchdog"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve runs a watchdog; the channel is closed when Serve returns, after
// which *errp holds its result.
func serve(t *testing.T, cfg watchdog.Config) (string, <-chan struct{}, *error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Listen = freeAddr(t)
	cfg.Stdout, cfg.Stderr = io.Discard, io.Discard
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = watchdog.Serve(ctx, cfg); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("watchdog did not stop")
		}
	})
	base := "http://" + cfg.Listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + watchdog.HealthPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, done, &serveErr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("watchdog never became healthy")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func post(t *testing.T, url, body string) (int, string) {
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPMode(t *testing.T) {
	bin := drivertest.TestBinary(t)
	base, _, _ := serve(t, watchdog.Config{Protocol: "http", Command: []string{bin}, UpstreamPort: freePort(t)})
	if code, body := post(t, base+"/", "through the watchdog"); code != 200 || body != "through the watchdog" {
		t.Fatalf("%d %q", code, body)
	}
	if code, body := post(t, base+"/headers?x=1", ""); code != 200 || !strings.HasPrefix(body, "POST /headers?x=1") {
		t.Fatalf("path and query not passed: %d %q", code, body)
	}
}

func TestHTTPModeExitsWithProgram(t *testing.T) {
	bin := drivertest.TestBinary(t)
	base, done, errp := serve(t, watchdog.Config{Protocol: "http", Command: []string{bin}, UpstreamPort: freePort(t)})
	http.Get(base + "/crash")
	select {
	case <-done:
		if *errp == nil {
			t.Fatal("watchdog exited cleanly after its program crashed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watchdog kept running after its program exited")
	}
}

func TestStdioMode(t *testing.T) {
	bin := drivertest.TestBinary(t)
	base, _, _ := serve(t, watchdog.Config{Protocol: "stdio", Command: []string{bin, "stdio"}})
	if code, body := post(t, base+"/", "one request, one process"); code != 200 || body != "one request, one process" {
		t.Fatalf("%d %q", code, body)
	}
	if code, body := post(t, base+"/", "fail"); code != 500 || strings.Contains(body, "asked to fail") {
		t.Fatalf("failing run: %d %q", code, body)
	}
	_, env := post(t, base+"/some/path?q=2", "env")
	for _, want := range []string{"NIMBUS_HTTP_PATH=/some/path", "NIMBUS_HTTP_QUERY=q=2", "NIMBUS_HTTP_METHOD=POST"} {
		if !strings.Contains(env, want) {
			t.Errorf("stdio env lacks %s", want)
		}
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDrainOnStop: told to stop, the watchdog lets a request in flight
// finish for up to Drain (a function's timeout, from NIMBUS_TIMEOUT), and
// no longer: a rollout does not cut a request shorter than the timeout.
func TestDrainOnStop(t *testing.T) {
	bin := drivertest.TestBinary(t)
	// testfn, told to stop, keeps serving 2 s before it shuts down (and
	// its process exits as its server closes, as many programs do): the
	// watchdog must wait for the request, not for the program.
	t.Setenv("TERM_DELAY", "2s")
	for _, c := range []struct {
		drain    time.Duration
		finishes bool
	}{{3 * time.Second, true}, {300 * time.Millisecond, false}} {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := watchdog.Config{Protocol: "http", Command: []string{bin}, UpstreamPort: freePort(t), Drain: c.drain,
			Listen: freeAddr(t), Stdout: io.Discard, Stderr: io.Discard}
		done := make(chan struct{})
		go func() { watchdog.Serve(ctx, cfg); close(done) }()
		base := "http://" + cfg.Listen
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if resp, err := http.Get(base + watchdog.HealthPath); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("watchdog never became healthy")
			}
		}
		answered := make(chan string, 1)
		go func() {
			resp, err := http.Get(base + "/sleep?ms=1500")
			if err != nil {
				answered <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answered <- string(b)
		}()
		time.Sleep(300 * time.Millisecond) // the request is in flight
		stopped := time.Now()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the watchdog did not stop")
		}
		took := time.Since(stopped)
		if c.finishes {
			if got := <-answered; got != "slept" || took < time.Second {
				t.Errorf("drain %s: the request in flight got %q, the watchdog stopped after %s", c.drain, got, took)
			}
		} else if took > time.Second {
			t.Errorf("drain %s: the watchdog stopped after %s, past its drain", c.drain, took)
		}
	}
}
