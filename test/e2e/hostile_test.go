package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stallRequest sends a request's head and one byte ("{") of a longer body, then
// waits; it returns the status line nimbus answers with.
func stallRequest(t *testing.T, base, method, path string, header string, length int) (string, time.Duration) {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n{", method, path, u.Host, header, length)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s %s: no answer to a stalled body: %v", method, path, err)
	}
	return strings.TrimSpace(line), time.Since(began)
}

// TestStalledBodiesEverywhere: every route that reads a body answers a
// client that stalls mid-body with a 408 at the server's body deadline
// (--body-read-timeout), or at the function's timeout for an invocation.
func TestStalledBodiesEverywhere(t *testing.T) {
	data := dataDir(t)
	n := start(t, data, "--body-read-timeout", "1s")
	dir, _ := ledgerFunction(t, "sink", "timeout: 2s\n")
	n.mustCLI("deploy", dir)
	token := strings.TrimSpace(readFile(t, data+"/admin-token"))
	auth := "Authorization: Bearer " + token + "\r\n"
	for _, c := range []struct {
		base, method, path, header string
		length                     int
		within                     time.Duration
	}{
		{n.URL, "POST", "/function/sink", "", 10, 3 * time.Second},       // the function's 2s
		{n.URL, "POST", "/function/sink", "", 1 << 20, 3 * time.Second},  // streamed: the same
		{n.URL, "POST", "/async-function/sink", "", 10, 2 * time.Second}, // the server's 1s
		{n.URL, "POST", "/v1/packages", auth, 1000, 2 * time.Second},     // an upload
		{n.URL, "PUT", "/v1/functions/x", auth, 100, 2 * time.Second},    // a spec
		{n.URL, "POST", "/events", "Content-Type: application/cloudevents+json\r\n", 100, 2 * time.Second},
		{n.Events, "POST", "/anything", "", 100, 2 * time.Second}, // the events API
		{n.URL, "POST", "/system/functions", "Authorization: Basic " + basic(token) + "\r\n", 100, 2 * time.Second},
	} {
		line, took := stallRequest(t, c.base, c.method, c.path, c.header, c.length)
		if !strings.HasPrefix(line, "HTTP/1.1 408") && !(strings.HasPrefix(c.path, "/function/") && strings.HasPrefix(line, "HTTP/1.1 504")) {
			t.Errorf("%s %s: want 408, got %q after %s", c.method, c.path, line, took)
		}
		if took > c.within {
			t.Errorf("%s %s: answered after %s, want within %s", c.method, c.path, took, c.within)
		}
	}
	// Nothing was stored by the stalled requests, and the function serves.
	if out := n.mustCLI("list"); strings.Contains(out, " x ") {
		t.Fatalf("a stalled spec was stored:\n%s", out)
	}
	if code, body, _ := n.invoke("POST", "/function/sink", "ok"); code != 200 || body != "ok" {
		t.Fatalf("after the stalls: %d %q", code, body)
	}
}

// basic is the OpenFaaS credential for the admin token.
func basic(token string) string { return base64.StdEncoding.EncodeToString([]byte("admin:" + token)) }
