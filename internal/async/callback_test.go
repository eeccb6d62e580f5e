package async_test

import (
	"context"
	"errors"
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
	"nimbus/internal/queue"
	"nimbus/internal/queue/natsqueue"
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
	async.SetCallbackBackoff(t, 10*time.Millisecond)
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

// TestSlowCallbackRunsOnce: a callback receiver slower than the queue's ack
// wait does not make the function run again: the call is settled before
// its callback is tried, and the callback is a delivery of its own.
func TestSlowCallbackRunsOnce(t *testing.T) {
	async.SetCallbackBackoff(t, 10*time.Millisecond)
	e := newEnvWith(t, natsqueue.Options{AckWait: time.Second})
	e.deploy(t, "once", nil)
	var mu sync.Mutex
	posts := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		n := posts
		mu.Unlock()
		time.Sleep(2500 * time.Millisecond) // past the 1s ack wait
		if n == 1 {
			w.WriteHeader(503) // and a failed first try
			return
		}
		w.WriteHeader(204)
	}))
	defer recv.Close()
	_, id := e.enqueue(t, "/async-function/once/flaky?k=0", "x", "X-Callback-Url", recv.URL)
	// While the receiver takes its time, the final record says so.
	waitFor(t, "the record to say the callback is queued", 10*time.Second, func() bool {
		r, ok := e.lastRecord(id)
		return ok && r.State == calls.Done && r.Callback == "queued"
	})
	waitFor(t, "the callback's outcome in the record", 30*time.Second, func() bool {
		r, ok := e.lastRecord(id)
		return ok && r.State == calls.Done && r.Callback == "delivered (204)"
	})
	time.Sleep(1500 * time.Millisecond) // a redelivery would have come by now
	if runs := e.done()[id]; len(runs) != 1 {
		t.Fatalf("the function ran %d times, want once", len(runs))
	}
	mu.Lock()
	defer mu.Unlock()
	if posts != 2 {
		t.Fatalf("the callback was posted %d times, want 2 (one failure, one success)", posts)
	}
}

// TestLargeBodies: an async call whose body is far beyond a NATS message
// (7 MiB) is accepted and delivered intact (the callback carries the
// function's echo of it); one beyond the body limit is a 413.
func TestLargeBodies(t *testing.T) {
	async.SetCallbackBackoff(t, 10*time.Millisecond)
	e := newEnvWith(t, natsqueue.Options{})
	e.srv.Config.Handler.(*async.Handler).MaxBodyBytes = 16 << 20
	e.deploy(t, "big", nil)
	h := &hook{}
	recv := httptest.NewServer(h)
	defer recv.Close()
	body := strings.Repeat("0123456789abcdef", 7<<20/16)
	if code, _ := e.enqueue(t, "/async-function/big", body, "X-Callback-Url", recv.URL); code != 202 {
		t.Fatalf("a 7 MiB async call: %d", code)
	}
	waitFor(t, "the callback", 30*time.Second, func() bool { return len(h.posts()) == 1 })
	if got := h.posts()[0].body; got != body {
		t.Fatalf("the body arrived as %d bytes, want %d intact", len(got), len(body))
	}
	if code, _ := e.enqueue(t, "/async-function/big", strings.Repeat("x", 17<<20)); code != 413 {
		t.Fatalf("over the limit: %d, want 413", code)
	}
}

// TestRedriveLargeBody: a dead-lettered call with a body stored apart is
// redriven (at once, within the queue's duplicate window) and runs with its
// body intact; purging a dead letter drops its stored body.
func TestRedriveLargeBody(t *testing.T) {
	async.SetCallbackBackoff(t, 10*time.Millisecond)
	e := newEnvWith(t, natsqueue.Options{})
	e.srv.Config.Handler.(*async.Handler).MaxBodyBytes = 4 << 20
	zero := 0
	e.deploy(t, "redo", func(f *function.Function) { f.Async.MaxRetries = &zero })
	h := &hook{}
	recv := httptest.NewServer(h)
	defer recv.Close()
	body := strings.Repeat("z", 2<<20)
	_, id := e.enqueue(t, "/async-function/redo/flaky?k=1&echo=1", body, "X-Callback-Url", recv.URL)
	ctx := context.Background()
	waitFor(t, "the dead letter", 20*time.Second, func() bool {
		d, err := e.q.GetDeadLetter(ctx, id)
		return err == nil && string(d.Message.Body) == body
	})
	if _, err := e.q.Redrive(ctx, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redriven call to run", 20*time.Second, func() bool { return len(e.done()[id]) == 1 })
	waitFor(t, "its callback", 20*time.Second, func() bool {
		p := h.posts()
		return len(p) == 2 && p[1].header.Get("X-Function-Status") == "200"
	})
	if got := h.posts()[1].body; got != body {
		t.Fatalf("the redriven call's body: %d bytes, want %d", len(got), len(body))
	}
	if _, err := e.q.GetDeadLetter(ctx, id); err == nil {
		t.Fatal("the dead letter is still there after the redrive")
	}
	// Purge: a second call dead-lettered, then purged; its body goes.
	_, id2 := e.enqueue(t, "/async-function/redo/fail", body)
	var d queue.DeadLetter
	waitFor(t, "the second dead letter", 20*time.Second, func() bool {
		var err error
		d, err = e.q.GetDeadLetter(ctx, id2)
		return err == nil
	})
	if d.Message.BodyRef == "" {
		t.Fatal("a 2 MiB body was not stored apart")
	}
	bodies, err := e.bb.JS.ObjectStore(ctx, "nimbus_bodies")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bodies.GetInfo(ctx, d.Message.BodyRef); err != nil {
		t.Fatalf("the dead letter's body is not stored: %v", err)
	}
	if err := e.q.DeleteDeadLetter(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if _, err := bodies.GetInfo(ctx, d.Message.BodyRef); err == nil {
		t.Fatal("the purged dead letter's body is still stored")
	}
	if _, err := e.q.Redrive(ctx, id2, time.Now()); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("redrive of a purged dead letter: %v", err)
	}
}
