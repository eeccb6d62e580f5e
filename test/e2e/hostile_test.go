package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestFullDisk: with the data dir's disk full, uploads answer 507 with a
// message, async calls 503 with Retry-After, /readyz says not ready and a
// log line says why; when space returns, all of it works again without a
// restart. The data dir is a small tmpfs.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs as the data dir needs root")
	}
	data := dataDir(t)
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=64m,mode=0711"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(data, syscall.MNT_DETACH) }) // after nimbus stops
	n := start(t, data)
	dir, record := ledgerFunction(t, "sink", "")
	n.mustCLI("deploy", dir)
	token := strings.TrimSpace(readFile(t, data+"/admin-token"))
	if code, _, _ := n.invoke("POST", "/async-function/sink/record", "before"); code != 202 {
		t.Fatalf("async before the disk filled: %d", code)
	}

	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 1<<20); ; {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	var ready string
	waitUntil(t, "/readyz to say not ready", 5*time.Second, func() bool {
		code, body, _ := n.invoke("GET", "/readyz", "")
		ready = body
		return code == 503 && strings.Contains(body, "full")
	})
	code, body, _ := n.invoke("POST", "/v1/packages", "\x1f\x8bpackage", "Authorization", "Bearer "+token)
	if code != 507 || !strings.Contains(body, "insufficient_storage") || !strings.Contains(body, "full") {
		t.Fatalf("an upload on a full disk: %d %s", code, body)
	}
	code, body, hdr := n.invoke("POST", "/async-function/sink/record", "during")
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(body, "full") {
		t.Fatalf("an async call on a full disk: %d %v %s", code, hdr, body)
	}
	// Anonymous callers are not told where the data dir is.
	if strings.Contains(body, data) || strings.Contains(ready, data) {
		t.Fatalf("the data dir's path reached anonymous callers:\n%s\n%s", body, ready)
	}
	if !strings.Contains(n.out.String(), "the data dir's disk is full") {
		t.Fatalf("no log line says the disk is full:\n%s", n.out)
	}

	os.Remove(filler)
	waitUntil(t, "/readyz to say ready", 5*time.Second, func() bool {
		code, _, _ := n.invoke("GET", "/readyz", "")
		return code == 200
	})
	code, _, hdr = n.invoke("POST", "/async-function/sink/record", "after")
	if code != 202 {
		t.Fatalf("an async call once the disk has room: %d", code)
	}
	after := hdr.Get("X-Call-Id")
	waitUntil(t, "the call made after the disk had room to run", 15*time.Second, func() bool { return executed(record)[after] == 1 })
	os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("a change, so the package is new"), 0o644)
	if out := n.mustCLI("deploy", dir); !strings.Contains(out, "updated") {
		t.Fatalf("an upload and deploy once the disk has room: %s", out)
	}
}
