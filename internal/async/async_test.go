package async_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/async"
	"nimbus/internal/backbone"
	"nimbus/internal/calls"
	"nimbus/internal/driver"
	"nimbus/internal/driver/drivertest"
	"nimbus/internal/driver/process"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/outbound"
	"nimbus/internal/provider"
	"nimbus/internal/queue"
	"nimbus/internal/queue/natsqueue"
	"nimbus/internal/scaler/scalertest"
	"nimbus/internal/store"
)

// env is a real embedded NATS queue, the real gateway and the process driver
// running testfn.
type env struct {
	bb      *backbone.Backbone
	q       *natsqueue.Queue
	gw      *gateway.Gateway
	stack   *scalertest.Stack
	disp    *async.Dispatcher
	srv     *httptest.Server
	mu      sync.Mutex
	logs    []store.LogLine
	records []calls.Record
	rev     uint64
}

func (e *env) record(r calls.Record) { e.mu.Lock(); e.records = append(e.records, r); e.mu.Unlock() }

// lastRecord is the latest call record of id by its Updated time, as the
// index keeps it: the handler's "queued" record can be handed over after
// the dispatcher's, when the delivery beats the handler's return.
func (e *env) lastRecord(id string) (calls.Record, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var last calls.Record
	found := false
	for _, r := range e.records {
		if r.CallID == id && (!found || !r.Updated.Before(last.Updated)) {
			last, found = r, true
		}
	}
	return last, found
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, natsqueue.Options{}) }

// newEnvWith is newEnv with the queue's options.
func newEnvWith(t *testing.T, qo natsqueue.Options) *env {
	t.Helper()
	ctx := context.Background()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	q, err := natsqueue.Open(ctx, bb.JS, qo)
	if err != nil {
		t.Fatal(err)
	}
	_, open := drivertest.TestPackage(t)
	drv, err := process.New(process.Options{StateDir: drivertest.StateDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{q: q, bb: bb}
	t.Cleanup(func() { drv.Close(context.Background()) }) // after the stack's
	logLine := func(l store.LogLine) { e.mu.Lock(); e.logs = append(e.logs, l); e.mu.Unlock() }
	e.stack = scalertest.New(t, map[string]driver.Driver{"process": drv},
		gateway.Options{Metrics: gateway.NewMetrics(prometheus.NewRegistry()), Log: logLine},
		provider.LocalOptions{OpenPackage: open, Log: logLine})
	e.gw = e.stack.Gateway
	// Tests call back to loopback: allow it, as --allow-outbound does.
	guard := outbound.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	e.disp = &async.Dispatcher{Queue: q, Invoke: e.gw, Spec: e.gw.Spec, Record: e.record, Outbound: guard.Client(5 * time.Second)}
	if qo.AckWait > 0 {
		e.disp.Heartbeat = qo.AckWait / 3
	}
	e.disp.ConsumeOutbound(async.CallbackNamespace, async.CallbackFunction, 16)
	e.srv = httptest.NewServer(&async.Handler{Queue: q, Spec: e.gw.Spec, MaxBodyBytes: 1 << 20,
		CheckCallback: guard.CheckURL, Record: e.record})
	t.Cleanup(func() {
		e.srv.Close()
		e.disp.Close()

		bb.Close()
	})
	return e
}

func (e *env) deploy(t *testing.T, name string, mod func(*function.Function)) {
	digest, _ := drivertest.TestPackage(t)
	fn := function.Function{Name: name, Command: []string{"./testfn"}, Package: digest}
	if mod != nil {
		mod(&fn)
	}
	fn = fn.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	e.rev++
	rec := store.Record{Function: fn, Revision: e.rev}
	e.stack.Apply(rec)
	e.disp.Apply(rec)
}

// enqueue POSTs body to path with the header pairs hdr, and returns the
// status and the call id.
func (e *env) enqueue(t *testing.T, path, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Call-Id")
}

// done counts the "done ID attempt A" lines testfn printed, by call id.
func (e *env) done() map[string][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string][]string{}
	for _, l := range e.logs {
		if f := strings.Fields(l.Text); len(f) == 4 && f[0] == "done" {
			out[f[1]] = append(out[f[1]], f[3])
		}
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAcceptAndExecute(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "work", nil)
	ids := map[string]bool{}
	for i := range 30 {
		code, id := e.enqueue(t, "/async-function/work/flaky?k=0", fmt.Sprint(i))
		if code != 202 || id == "" {
			t.Fatalf("enqueue: %d %q", code, id)
		}
		ids[id] = true
	}
	waitFor(t, "30 executions", 20*time.Second, func() bool { return len(e.done()) == 30 })
	for id, attempts := range e.done() {
		if !ids[id] || attempts[0] != "1" {
			t.Fatalf("call %s ran as attempt %v", id, attempts)
		}
	}
	if code, _ := e.enqueue(t, "/async-function/nope", "x"); code != 404 {
		t.Fatalf("unknown function: %d", code)
	}
	if code, _ := e.enqueue(t, "/async-function/work", strings.Repeat("x", 2<<20)); code != 413 {
		t.Fatalf("oversized body: %d", code)
	}
	resp, _ := http.Get(e.srv.URL + "/async-function/work")
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "flaky", func(f *function.Function) { f.Async.Backoff = function.Duration(20 * time.Millisecond) })
	_, id := e.enqueue(t, "/async-function/flaky/flaky?k=2", "")
	waitFor(t, "success on the third attempt", 20*time.Second, func() bool { return len(e.done()[id]) == 1 })
	if got := e.done()[id]; got[0] != "3" {
		t.Fatalf("succeeded on attempt %v, want 3 (two failures, two retries)", got)
	}
}

func TestDeadLetterAfterLastAttempt(t *testing.T) {
	e := newEnv(t)
	retries := 1
	e.deploy(t, "broken", func(f *function.Function) {
		f.Async.Backoff = function.Duration(20 * time.Millisecond)
		f.Async.MaxRetries = &retries
	})
	_, id := e.enqueue(t, "/async-function/broken/fail", "payload")
	var d queue.DeadLetter
	waitFor(t, "a dead letter", 20*time.Second, func() bool {
		var err error
		d, err = e.q.GetDeadLetter(context.Background(), id)
		return err == nil
	})
	if d.Attempts != 2 || d.LastStatus != 500 || !strings.Contains(d.Error, "always failing") ||
		string(d.Message.Body) != "payload" || d.Function != "broken" || d.Enqueued.IsZero() {
		t.Fatalf("dead letter: %+v", d)
	}
	list, err := e.q.DeadLetters(context.Background(), "default", "broken")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := e.q.DeleteDeadLetter(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.GetDeadLetter(context.Background(), id); err == nil {
		t.Fatal("purged dead letter still there")
	}
}

func TestMaxEventAge(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "slowretry", func(f *function.Function) {
		f.Async.Backoff = function.Duration(3 * time.Second) // the retry comes ≥ 1.5s later…
		f.Async.MaxEventAge = function.Duration(time.Second) // …past the maximum age
	})
	_, id := e.enqueue(t, "/async-function/slowretry/fail", "")
	var d queue.DeadLetter
	waitFor(t, "expiry", 20*time.Second, func() bool {
		var err error
		d, err = e.q.GetDeadLetter(context.Background(), id)
		return err == nil
	})
	if !strings.Contains(d.Error, "maximum event age") || d.Attempts != 1 || d.LastStatus != 500 {
		t.Fatalf("want expiry after one attempt, got %+v", d)
	}
}

func TestBackoff(t *testing.T) {
	if got := async.Backoff(time.Second, 1, 0.5); got != time.Second {
		t.Fatalf("first retry: %s", got)
	}
	if got := async.Backoff(time.Second, 3, 0.5); got != 4*time.Second {
		t.Fatalf("third retry: %s", got)
	}
	if got := async.Backoff(time.Second, 3, 0); got != 2*time.Second {
		t.Fatalf("low jitter: %s", got)
	}
	if got := async.Backoff(time.Minute, 20, 0.9); got != 10*time.Minute {
		t.Fatalf("cap: %s", got)
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "once", nil)
	post := func(key string) (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/async-function/once/flaky?k=0", strings.NewReader("x"))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Call-Id")
	}
	code, first := post("order-42")
	var wg sync.WaitGroup
	ids := make(chan string, 5)
	for range 5 { // repeats, some concurrent
		wg.Go(func() {
			c, id := post("order-42")
			if c != 202 {
				t.Errorf("repeat: %d", c)
			}
			ids <- id
		})
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		if id != first {
			t.Fatalf("a repeat got call id %q, want the original %q", id, first)
		}
	}
	_, other := post("order-43")
	if code != 202 || other == first {
		t.Fatalf("another key: %q", other)
	}
	waitFor(t, "two executions", 20*time.Second, func() bool { return len(e.done()) == 2 })
	time.Sleep(300 * time.Millisecond)
	if d := e.done(); len(d[first]) != 1 || len(d) != 2 {
		t.Fatalf("executions: %v", d)
	}
}

// TestIdempotencyTakeOver: a claim left pending by a request that died
// before queueing is taken over by the repeat, which queues the original
// call id, so the client's retry is not answered 202 for nothing.
func TestIdempotencyTakeOver(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "orphan", nil)
	if _, claimed, _, err := e.q.Claim(context.Background(), "default/orphan/key-1", "ghost-call"); err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/async-function/orphan/flaky?k=0", strings.NewReader("x"))
	req.Header.Set("Idempotency-Key", "key-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || resp.Header.Get("X-Call-Id") != "ghost-call" {
		t.Fatalf("repeat after a dead claimer: %d %q", resp.StatusCode, resp.Header.Get("X-Call-Id"))
	}
	waitFor(t, "the original call to run", 20*time.Second, func() bool { return len(e.done()["ghost-call"]) == 1 })
}

// TestUnavailableIs503: with the backbone gone, an invocation is refused
// with 503 and Retry-After — never a 202 for a call that was not stored.
func TestUnavailableIs503(t *testing.T) {
	ctx := context.Background()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	q, err := natsqueue.Open(ctx, bb.JS, natsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	exists := func(string, string) (function.Function, bool) { return function.Function{}, true }
	srv := httptest.NewServer(&async.Handler{Queue: q, Spec: exists})
	defer srv.Close()
	bb.Close()
	for _, key := range []string{"", "some-key"} {
		req, _ := http.NewRequest("POST", srv.URL+"/async-function/fn", strings.NewReader("x"))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "queue_unavailable") {
			t.Fatalf("key %q: want 503 with Retry-After, got %d %s", key, resp.StatusCode, b)
		}
	}
}

// TestConsumersPerFunction: functions whose namespace and name join to the
// same string (team-a/x and team/a-x) each get their own consumer, and each
// call runs in its own function; a deleted function's consumer drains what
// is queued (as dead letters) and is then deleted with its goroutines.
func TestConsumersPerFunction(t *testing.T) {
	setDrainInterval(t, 20*time.Millisecond)
	e := newEnv(t)
	e.deploy(t, "x", func(f *function.Function) { f.Namespace = "team-a" })
	e.deploy(t, "a-x", func(f *function.Function) { f.Namespace = "team" })
	ids := map[string]string{}
	for i := range 10 {
		for _, target := range []string{"x.team-a", "a-x.team"} {
			code, id := e.enqueue(t, "/async-function/"+target+"/flaky?k=0", fmt.Sprint(i))
			if code != 202 {
				t.Fatalf("enqueue %s: %d", target, code)
			}
			ids[id] = target
		}
	}
	waitFor(t, "20 executions", 20*time.Second, func() bool { return len(e.done()) == 20 })
	e.mu.Lock()
	for _, l := range e.logs {
		f := strings.Fields(l.Text)
		if len(f) != 4 || f[0] != "done" {
			continue
		}
		if want := ids[f[1]]; want != l.Function+"."+l.Namespace {
			t.Errorf("call %s for %s ran in %s.%s", f[1], want, l.Function, l.Namespace)
		}
	}
	e.mu.Unlock()

	// Delete team-a/x with calls still queued (its instance is busy).
	e.deploy(t, "x", func(f *function.Function) {
		f.Namespace = "team-a"
		f.Scale.Max, f.Scale.MaxConcurrency = 1, 1
	})
	var queued []string
	for range 3 {
		_, id := e.enqueue(t, "/async-function/x.team-a/sleep?ms=300", "")
		queued = append(queued, id)
	}
	before := e.disp.Consumers()
	e.stack.Remove("team-a", "x")
	e.disp.Remove("team-a", "x")
	waitFor(t, "the deleted function's consumer to go", 20*time.Second, func() bool { return e.disp.Consumers() == before-1 })
	fns, err := e.q.Functions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		if f == [2]string{"team-a", "x"} {
			t.Fatalf("the deleted function still has a consumer or messages: %v", fns)
		}
	}
	for _, id := range queued {
		if _, ran := e.done()[id]; ran {
			continue
		}
		if _, err := e.q.GetDeadLetter(context.Background(), id); err != nil {
			t.Errorf("queued call %s of the deleted function neither ran nor was dead-lettered: %v", id, err)
		}
	}
	// The other function is untouched.
	_, id := e.enqueue(t, "/async-function/a-x.team/flaky?k=0", "after")
	waitFor(t, "a call to the remaining function", 10*time.Second, func() bool { return len(e.done()[id]) == 1 })
}

// TestPruneAtStart: messages and a consumer left for a function deleted
// while nimbus was down are drained into dead letters and deleted, and a
// consumer named by the earlier scheme is replaced when the queue opens.
func TestPruneAtStart(t *testing.T) {
	setDrainInterval(t, 20*time.Millisecond)
	ctx := context.Background()
	e := newEnv(t)
	m := queue.Message{CallID: "orphan-1", Namespace: "gone", Function: "fn", Method: "POST", Path: "/", Enqueued: time.Now().UTC()}
	if err := e.q.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	before := e.disp.Consumers()
	if err := e.disp.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphan's dead letter", 30*time.Second, func() bool { // slow only under -race and load
		_, err := e.q.GetDeadLetter(ctx, "orphan-1")
		return err == nil
	})
	waitFor(t, "the orphan's consumer to go", 30*time.Second, func() bool { return e.disp.Consumers() == before })
	// The dispatcher forgets the consumer, then deletes it from the queue.
	waitFor(t, "the orphan's queue consumer deleted", 30*time.Second, func() bool {
		fns, _ := e.q.Functions(ctx)
		return !slices.ContainsFunc(fns, func(f [2]string) bool { return f[0] == "gone" })
	})
}

// TestSameCallIDBothRun: two async calls sent with one X-Call-Id both run,
// under call ids of nimbus's own; the caller's id is their correlation id
// and neither record overwrites the other. Only Idempotency-Key dedupes.
func TestSameCallIDBothRun(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "twice", nil)
	var ids []string
	for _, body := range []string{"first", "second"} {
		code, id := e.enqueue(t, "/async-function/twice/flaky?k=0", body, "X-Call-Id", "shared-id")
		if code != 202 || id == "shared-id" || id == "" {
			t.Fatalf("enqueue: %d %q", code, id)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Fatal("two calls got one call id")
	}
	waitFor(t, "both calls to run", 20*time.Second, func() bool {
		d := e.done()
		return len(d[ids[0]]) == 1 && len(d[ids[1]]) == 1
	})
	for _, id := range ids {
		waitFor(t, "the record of "+id, 5*time.Second, func() bool {
			r, ok := e.lastRecord(id)
			return ok && r.State == calls.Done && r.CorrelationID == "shared-id"
		})
	}
}

// TestUndecodableMessageLogged: a message on the async stream that is not
// an invocation is dropped with an error line naming its function, never
// silently.
func TestUndecodableMessageLogged(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	var buf safeBuffer
	q, err := natsqueue.Open(ctx, bb.JS, natsqueue.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bb.JS.Publish(ctx, "nimbus.async.default.fn", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	go q.Consume(ctx, "default", "fn", 1, func(queue.Delivery) { handled <- struct{}{} })
	waitFor(t, "the error line", 10*time.Second, func() bool {
		return strings.Contains(buf.String(), "cannot be decoded") && strings.Contains(buf.String(), "default/fn")
	})
	select {
	case <-handled:
		t.Fatal("garbage was handed to the dispatcher")
	default:
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *safeBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestRecordWaitDoesNotRerun: a call's final record that waits (a full
// disk, a slow backbone) longer than the ack wait keeps the delivery in
// progress: the function runs once, and the call is settled when the
// record is stored.
func TestRecordWaitDoesNotRerun(t *testing.T) {
	e := newEnvWith(t, natsqueue.Options{AckWait: time.Second})
	stored := make(chan struct{})
	e.disp.RecordThen = func(rec calls.Record, then func()) {
		e.record(rec)
		go func() {
			select {
			case <-stored:
			case <-time.After(3 * time.Second): // three ack waits
			}
			then()
		}()
	}
	defer close(stored)
	e.deploy(t, "patient", nil)
	_, id := e.enqueue(t, "/async-function/patient/flaky?k=0", "x")
	waitFor(t, "the call to run", 10*time.Second, func() bool { return len(e.done()[id]) > 0 })
	waitFor(t, "the call to be settled", 10*time.Second, func() bool {
		n, err := e.q.Pending(context.Background(), "default", "patient")
		return err == nil && n == 0
	})
	if runs := e.done()[id]; len(runs) != 1 {
		t.Fatalf("the function ran %d times while its record waited, want once", len(runs))
	}
}

// setDrainInterval sets async.DrainInterval for one test.
func setDrainInterval(t *testing.T, d time.Duration) {
	was := async.DrainInterval
	async.DrainInterval = d
	t.Cleanup(func() { async.DrainInterval = was })
}

// TestPruneKeepsWhatTheStoreHas: a function this gateway does not know yet
// but the store has (a short first view right after a NATS leader change)
// keeps its queue: nothing is dead-lettered as deleted.
func TestPruneKeepsWhatTheStoreHas(t *testing.T) {
	setDrainInterval(t, 20*time.Millisecond)
	ctx := context.Background()
	e := newEnv(t)
	m := queue.Message{CallID: "kept-1", Namespace: "late", Function: "fn", Method: "POST", Path: "/", Enqueued: time.Now().UTC()}
	if err := e.q.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	e.disp.Stored = func(_ context.Context, ns, name string) (bool, error) { return ns == "late" && name == "fn", nil }
	if err := e.disp.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := e.q.GetDeadLetter(ctx, "kept-1"); err == nil {
		t.Fatal("a call of a function the store has was dead-lettered as deleted")
	}
	fns, _ := e.q.Functions(ctx)
	if !slices.ContainsFunc(fns, func(f [2]string) bool { return f[0] == "late" }) {
		t.Fatalf("the function's queue is gone: %v", fns)
	}
}
