package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The direct transport against real HTTP servers on loopback.

type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func serve(t *testing.T, h http.HandlerFunc, configure func(*http.Server)) (*directTransport, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := &http.Server{Handler: h}
	if configure != nil {
		configure(srv)
	}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	fallback := &http.Transport{}
	dt := newDirectTransport(ln.Addr().String(), fallback)
	t.Cleanup(dt.Close)
	return dt, cl
}

func roundTrip(t *testing.T, rt http.RoundTripper, method, body string) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://instance/x", r)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestDirectReusesConnections(t *testing.T) {
	dt, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}, nil)
	for i := range 20 {
		if _, body := roundTrip(t, dt, "POST", "hi"); body != "hi" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("20 sequential requests used %d connections, want 1", n)
	}
}

func TestDirectDropsConnectionsTheServerClosed(t *testing.T) {
	dt, ln := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) },
		func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	roundTrip(t, dt, "GET", "")
	time.Sleep(200 * time.Millisecond) // the server closes the idle connection
	if resp, body := roundTrip(t, dt, "GET", ""); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the server closed the idle connection: %d %q", resp.StatusCode, body)
	}
	if n := ln.accepted.Load(); n != 2 {
		t.Fatalf("want a fresh connection after the server closed one, got %d connections", n)
	}
}

func TestDirectConnectionClose(t *testing.T) {
	dt, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("bye"))
	}, nil)
	for range 3 {
		if _, body := roundTrip(t, dt, "GET", ""); body != "bye" {
			t.Fatal(body)
		}
	}
	if n := ln.accepted.Load(); n != 3 {
		t.Fatalf("Connection: close responses must not be reused: %d connections", n)
	}
}

func TestDirectHeadAndNoContentAndUnboundedBody(t *testing.T) {
	dt, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "HEAD":
			w.Header().Set("Content-Length", "42")
		case "DELETE":
			w.WriteHeader(http.StatusNoContent)
		case "GET":
			// Flushed before the end, so the body arrives chunked.
			w.(http.Flusher).Flush()
			w.Write([]byte("streamed"))
		}
	}, nil)
	if resp, body := roundTrip(t, dt, "HEAD", ""); resp.StatusCode != 200 || body != "" || resp.ContentLength != 42 {
		t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, body := roundTrip(t, dt, "DELETE", ""); resp.StatusCode != 204 || body != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	if _, body := roundTrip(t, dt, "GET", ""); body != "streamed" {
		t.Fatalf("chunked: %q", body)
	}
	if _, body := roundTrip(t, dt, "HEAD", ""); body != "" {
		t.Fatal("connection state broken after mixed requests")
	}
}

func TestDirectSkipsInformational(t *testing.T) {
	dt, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Write([]byte("final"))
	}, nil)
	if resp, body := roundTrip(t, dt, "GET", ""); resp.StatusCode != 200 || body != "final" {
		t.Fatalf("after 103: %d %q", resp.StatusCode, body)
	}
}

func TestDirectAnswerWithoutReadingBody(t *testing.T) {
	dt, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}, nil)
	for range 3 {
		if resp, _ := roundTrip(t, dt, "POST", strings.Repeat("b", maxDirectBody)); resp.StatusCode != 403 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	}
}

func TestDirectFallsBack(t *testing.T) {
	dt, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write([]byte(r.Header.Get("X-Via") + string(b[:3])))
	}, nil)
	big := strings.Repeat("z", maxDirectBody+1)
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/", strings.NewReader(big))
	req.Header.Set("X-Via", "fb:")
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fb:zzz" {
		t.Fatalf("large body through the fallback: %q", b)
	}
	if !eligible(mustReq("GET", "")) || eligible(mustReq("POST", big)) {
		t.Fatal("eligibility wrong")
	}
	up := mustReq("GET", "")
	up.Header.Set("Upgrade", "websocket")
	if eligible(up) {
		t.Fatal("upgrade requests must use the fallback")
	}
}

func mustReq(method, body string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://x/", r)
	return req
}

func TestDirectCancelClosesConnection(t *testing.T) {
	release := make(chan struct{})
	dt, ln := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte("ok"))
	}, nil)
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://x/?slow=1", nil)
	if _, err := dt.RoundTrip(req); err == nil {
		t.Fatal("a request whose context ended succeeded")
	}
	if _, body := roundTrip(t, dt, "GET", ""); body != "ok" {
		t.Fatal(body)
	}
	if n := ln.accepted.Load(); n != 2 {
		t.Fatalf("the abandoned connection must not be reused: %d connections", n)
	}
}

func TestWriteRequestWire(t *testing.T) {
	var got []string
	dt, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.RequestURI()+" host="+r.Host+" ua="+r.UserAgent()+
			" x="+strings.Join(r.Header.Values("X-Multi"), ",")+" len="+fmt.Sprint(r.ContentLength)+" body="+string(b))
	}, nil)
	req, _ := http.NewRequest("PUT", "http://instance/a%20b/c?q=1&r=%2F", strings.NewReader(strings.Repeat("x", 10000)))
	req.Host = "front.example"
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	req.Header.Set("User-Agent", "")
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req2, _ := http.NewRequest("POST", "http://instance/", nil)
	resp, err = dt.RoundTrip(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{
		"PUT /a%20b/c?q=1&r=%2F host=front.example ua= x=1,2 len=10000 body=" + strings.Repeat("x", 10000),
		"POST / host=instance ua= x= len=0 body=",
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("the function saw:\n%q\nwant:\n%q", got, want)
	}
	// A body shorter than its declared length is an error, not a hang.
	short, _ := http.NewRequest("POST", "http://instance/", io.LimitReader(strings.NewReader("abc"), 3))
	short.ContentLength = 10
	if _, err := dt.RoundTrip(short); !errors.Is(err, errShortBody) {
		t.Fatalf("short body: %v", err)
	}
}

// TestDirectReplaysOnlySafeRequests: when a pooled connection turns out to
// have been closed by the function (the race a keep-alive timeout makes), a
// GET is sent again on a fresh connection; a POST without an idempotency key
// is not, as http.Transport decides.
func TestDirectReplaysOnlySafeRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func(c net.Conn) { // one answer per connection, then close
				defer c.Close()
				buf := make([]byte, 4096)
				if n, _ := c.Read(buf); n > 0 {
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
			}(c)
		}
	}()
	dt := newDirectTransport(ln.Addr().String(), &http.Transport{})
	defer dt.Close()
	dt.alive = func(net.Conn) bool { return true } // miss the close, as in the race
	warm := func() {
		roundTrip(t, dt, "GET", "")
		time.Sleep(50 * time.Millisecond) // the server has closed that connection
	}
	warm()
	if resp, body := roundTrip(t, dt, "GET", ""); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET on a closed pooled connection: %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("want the GET replayed on a second connection, got %d connections", n)
	}
	warm()
	req, _ := http.NewRequest("POST", "http://x/", strings.NewReader("charge the card"))
	if resp, err := dt.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("a POST was sent twice without an idempotency key")
	}
	warm()
	req, _ = http.NewRequest("POST", "http://x/", strings.NewReader("charge the card"))
	req.Header.Set("Idempotency-Key", "k-1")
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatalf("a POST with an idempotency key was not replayed: %v", err)
	}
	resp.Body.Close()
}
