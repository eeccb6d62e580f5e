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
