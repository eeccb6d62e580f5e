package reqbody

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve answers each request with how reading its body (Limit'ed to
// 200ms) ended, and after it whether the request's context is still
// live once the deadline has passed.
func serve(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Limit(w, r, 200*time.Millisecond)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			if !IsTimeout(err) || err != ErrTimeout {
				t.Errorf("a stalled read failed with %v, want ErrTimeout", err)
			}
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		// The deadline was cleared at the body's end: net/http's
		// background read must not see it and cancel the request.
		time.Sleep(300 * time.Millisecond)
		fmt.Fprintf(w, "%d bytes, context %v", len(b), r.Context().Err())
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestWholeBodyClearsTheDeadline(t *testing.T) {
	addr := serve(t)
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "5 bytes, context <nil>" {
		t.Fatalf("got %d %q, want the body read and the context live past the deadline", resp.StatusCode, b)
	}
}

func TestStalledBodyTimesOut(t *testing.T) {
	addr := serve(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a stalled client got no answer: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("got %d, want 408", resp.StatusCode)
	}
}

func TestNoConnectionNoDeadline(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader("in process"))
	w := httptest.NewRecorder()
	Limit(w, r, time.Nanosecond)
	b, err := io.ReadAll(r.Body)
	if err != nil || string(b) != "in process" {
		t.Fatalf("an in-process body: %q %v", b, err)
	}
}
