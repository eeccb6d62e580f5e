package async_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/async"
	"nimbus/internal/calls"
	"nimbus/internal/function"
)

type received struct {
	header http.Header
	body   string
}

// hook is a callback receiver that answers 503 to the first `fail` posts.
type hook struct {
	mu   sync.Mutex
	fail int
	got  []received
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, received{r.Header.Clone(), string(b)})
	if len(h.got) <= h.fail {
		w.WriteHeader(503)
		return
	}
	w.WriteHeader(200)
}

func (h *hook) posts() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

// TestCallback: the result reaches X-Callback-Url with the OpenFaaS headers
// and the function's body, after the receiver failed once; a dead-lettered
// call's callback says so; the call record tells what became of it.
func TestCallback(t *testing.T) {
	async.SetCallbackBackoff(10 * time.Millisecond)
	e := newEnv(t)
	e.deploy(t, "cb", func(f *function.Function) {
		zero := 0
		f.Async.MaxRetries = &zero
	})
	h := &hook{fail: 1}
	recv := httptest.NewServer(h)
	defer recv.Close()

	req, _ := http.NewRequest("POST", e.srv.URL+"/async-function/cb", strings.NewReader("the payload"))
	req.Header.Set("X-Callback-Url", recv.URL+"/done")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Call-Id")
	if resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d", resp.StatusCode)
	}
	waitFor(t, "the callback, retried once", 20*time.Second, func() bool { return len(h.posts()) == 2 })
	p := h.posts()[1]
	if p.body != "the payload" || p.header.Get("X-Call-Id") != id || p.header.Get("X-Function-Name") != "cb" ||
		p.header.Get("X-Function-Status") != "200" || p.header.Get("X-Duration-Seconds") == "" ||
		p.header.Get("X-Nimbus-Dead-Letter") != "" {
		t.Fatalf("callback: %q %v", p.body, p.header)
	}
	waitFor(t, "the call record", 5*time.Second, func() bool {
		r, ok := e.lastRecord(id)
		return ok && r.State == calls.Done && r.Callback == "delivered (200)"
	})

	req, _ = http.NewRequest("POST", e.srv.URL+"/async-function/cb/fail", strings.NewReader("x"))
	req.Header.Set("X-Callback-Url", recv.URL+"/done")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id = resp.Header.Get("X-Call-Id")
	waitFor(t, "the dead letter's callback", 20*time.Second, func() bool { return len(h.posts()) == 3 })
	p = h.posts()[2]
	if p.header.Get("X-Function-Status") != "500" || p.header.Get("X-Nimbus-Dead-Letter") != "true" || p.header.Get("X-Call-Id") != id {
		t.Fatalf("dead letter's callback: %v", p.header)
	}
	waitFor(t, "the dead letter's record", 5*time.Second, func() bool {
		r, ok := e.lastRecord(id)
		return ok && r.State == calls.DeadLettered && r.Attempts == 1 && r.Status == 500
	})
}

// TestCallbackRefused: a callback to a loopback, private, link-local or
// metadata address that is not allowed is a 400 and nothing is queued.
func TestCallbackRefused(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "cb", nil)
	for _, u := range []string{"http://127.0.0.2:9/x", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
		"http://[::1]:9/", "http://[::1%25lo]:9/", "http://[fe80::1%25lo]:9/", "http://[::169.254.169.254]/",
		"http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b::a9fe:a9fe]/", "file:///etc/passwd", "not a url"} {
		req, _ := http.NewRequest("POST", e.srv.URL+"/async-function/cb/record", strings.NewReader("x"))
		req.Header.Set("X-Callback-Url", u)
		req.Header.Set("X-Call-Id", "refused-call")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "invalid_callback") {
			t.Fatalf("%s: want 400 invalid_callback, got %d %s", u, resp.StatusCode, b)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := e.lastRecord("refused-call"); ok || len(e.done()) != 0 {
		t.Fatal("a refused call was queued")
	}
}
