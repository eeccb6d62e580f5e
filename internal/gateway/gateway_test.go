package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/calls"
	"nimbus/internal/driver/drivertest"
	"nimbus/internal/driver/process"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/scaler"
	"nimbus/internal/store"
)

// These tests run the real process driver with drivertest's testfn behind a
// real HTTP server on loopback.

type harness struct {
	gw   *Gateway
	sc   *scaler.Scaler
	srv  *httptest.Server
	drv  *process.Driver
	logs *logSink
	rev  uint64
}

type logSink struct {
	mu    sync.Mutex
	lines []store.LogLine
}

func (l *logSink) add(line store.LogLine) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	_, open := drivertest.TestPackage(t)
	drv, err := process.New(process.Options{StateDir: drivertest.StateDir(t), StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{drv: drv, logs: &logSink{}}
	o := Options{
		Runtimes: map[string]bool{"process": true},
		Activate: func(fn function.Function, active int) { h.sc.Activate(fn, active) },
		Burst:    func(fn function.Function, want int) { h.sc.Burst(fn, want) },
		Log:      h.logs.add,
		Metrics:  NewMetrics(prometheus.NewRegistry()),
	}
	if mod != nil {
		mod(&o)
	}
	h.gw = New(o)
	prov := provider.NewLocal(provider.LocalOptions{Driver: drv, OpenPackage: open, Log: h.logs.add,
		Watch: h.gw.SetState, Drain: h.gw.Drain, StopGrace: 2 * time.Second})
	h.sc = scaler.New(scaler.Options{Providers: map[string]provider.Provider{"process": prov}, Load: h.gw.TakeLoad,
		Tick: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.sc.Run(ctx); close(done) }()
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(func() {
		h.srv.Close()
		cancel()
		<-done
		h.gw.Close(context.Background())
		prov.Close(context.Background())
		drv.Close(context.Background())
	})
	return h
}

func (h *harness) deploy(t *testing.T, name string, mod func(*function.Function)) function.Function {
	t.Helper()
	digest, _ := drivertest.TestPackage(t)
	fn := function.Function{Name: name, Command: []string{"./testfn"}, Package: digest}
	if mod != nil {
		mod(&fn)
	}
	fn = fn.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	h.rev++
	rec := store.Record{Function: fn, Revision: h.rev}
	if err := h.gw.Apply(rec); err != nil {
		t.Fatal(err)
	}
	if err := h.sc.Apply(rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.gw.WaitApplied(ctx, fn.Namespace, fn.Name, h.rev); err != nil {
		t.Fatal(err)
	}
	return fn
}

func (h *harness) call(t *testing.T, method, path, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (h *harness) status(t *testing.T, name string) Status {
	s, _, ok := h.gw.Status("default", name)
	if !ok {
		t.Fatalf("no status for %s", name)
	}
	return s
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestForwardsEverything(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "echo", nil)
	resp, body := h.call(t, "PUT", "/function/echo/headers/a%20b?x=1&y=2", "", "X-Custom", "v1")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	t.Logf("function saw:\n%s", body)
	for _, want := range []string{"PUT /headers/a%20b?x=1&y=2 ", "X-Custom: v1", "X-Forwarded-For: 127.0.0.1", "X-Call-Id: "} {
		if !strings.Contains(body, want) {
			t.Errorf("function did not see %q:\n%s", want, body)
		}
	}
	resp, body = h.call(t, "POST", "/function/echo.default", "the body")
	if body != "the body" || resp.Header.Get("X-Testfn") != "1" {
		t.Fatalf("body or response header lost: %q %v", body, resp.Header)
	}
}

// TestCallID: every call gets a call id of the gateway's own; one a caller
// sends is kept as the correlation id (the function sees it as
// X-Correlation-Id, the record as correlationId) and never becomes the
// key of a record, so two calls sent with one X-Call-Id stay two.
func TestCallID(t *testing.T) {
	var mu sync.Mutex
	var recs []calls.Record
	h := newHarness(t, func(o *Options) {
		o.OnCall = func(r calls.Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() }
	})
	h.deploy(t, "echo", nil)
	var ids []string
	for range 2 {
		resp, body := h.call(t, "GET", "/function/echo/headers", "", "X-Call-Id", "my-call-1")
		id := resp.Header.Get("X-Call-Id")
		if len(id) != 36 || id == "my-call-1" || !strings.Contains(body, "X-Call-Id: "+id) ||
			!strings.Contains(body, "X-Correlation-Id: my-call-1") {
			t.Fatalf("a caller's X-Call-Id must become the correlation id: %v\n%s", resp.Header, body)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] {
		t.Fatal("two calls with one X-Call-Id got one call id")
	}
	resp, body := h.call(t, "GET", "/function/echo/headers", "")
	id := resp.Header.Get("X-Call-Id")
	if len(id) != 36 || !strings.Contains(body, "X-Call-Id: "+id) || strings.Contains(body, "X-Correlation-Id") {
		t.Fatalf("generated call id %q not on request and response:\n%s", id, body)
	}
	// A caller's own X-Correlation-Id is left as it is.
	_, body = h.call(t, "GET", "/function/echo/headers", "", "X-Call-Id", "a", "X-Correlation-Id", "mine")
	if !strings.Contains(body, "X-Correlation-Id: mine") {
		t.Fatalf("the caller's X-Correlation-Id was replaced:\n%s", body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recs) != 4 || recs[0].CallID != ids[0] || recs[1].CallID != ids[1] || recs[0].CorrelationID != "my-call-1" {
		t.Fatalf("records: %+v", recs)
	}
}

func TestUnknownFunction(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.call(t, "GET", "/function/nope", "")
	if resp.StatusCode != 404 || !strings.Contains(body, `"function_not_found"`) {
		t.Fatalf("want 404 function_not_found, got %d %s", resp.StatusCode, body)
	}
	resp, _ = h.call(t, "GET", "/function/", "")
	if resp.StatusCode != 404 {
		t.Fatalf("empty name: want 404, got %d", resp.StatusCode)
	}
}

func TestStreamsResponse(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "echo", nil)
	resp, err := http.Get(h.srv.URL + "/function/echo/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	began := time.Now()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "chunk 0\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	if took := time.Since(began); took > 300*time.Millisecond {
		t.Fatalf("first chunk took %s: the response was buffered", took)
	}
}

// TestAbortedClientReleasesSlot: a caller that goes away mid-response (the
// proxy then panics with http.ErrAbortHandler) gives its instance slot back
// and leaves a record; with maxConcurrency 1 the next call runs at once.
func TestAbortedClientReleasesSlot(t *testing.T) {
	var mu sync.Mutex
	var recs []calls.Record
	h := newHarness(t, func(o *Options) {
		o.OnCall = func(r calls.Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() }
	})
	h.deploy(t, "one", func(f *function.Function) {
		f.Scale.Max = 1
		f.Scale.MaxConcurrency = 1
		// Room for a cold start under the race detector on a busy machine.
		f.Timeout = function.Duration(15 * time.Second)
	})
	for range 3 {
		resp, err := http.Get(h.srv.URL + "/function/one/stream")
		if err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "chunk 0\n" {
			t.Fatalf("first chunk: %q %v", line, err)
		}
		resp.Body.Close() // goes away before the rest of the response
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		waitFor(t, "the aborted call's record", 3*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(recs) > 0 && recs[len(recs)-1].Status == 200 && recs[len(recs)-1].Error != ""
		})
		began := time.Now()
		resp2, body := h.call(t, "GET", "/function/one", "")
		// A leaked slot would hold this call to the 15 s timeout.
		if resp2.StatusCode != 200 || time.Since(began) >= 10*time.Second {
			t.Fatalf("after an aborted call: %d %s in %s (the slot leaked)", resp2.StatusCode, body, time.Since(began))
		}
	}
	if s := h.status(t, "one"); s.Invocations != 6 {
		t.Fatalf("want 6 invocations counted, got %+v", s)
	}
}

func TestStreamsRequestBody(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "echo", nil)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", h.srv.URL+"/function/echo", pr)
	done := make(chan string, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	for i := range 100 {
		fmt.Fprintf(pw, "part %d;", i)
	}
	pw.Close()
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "part 0;") || !strings.HasSuffix(got, "part 99;") {
			t.Fatalf("chunked body mangled: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to a chunked request")
	}
}

func TestScaleFromZeroSharesOneStart(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "cold", nil)
	if s := h.status(t, "cold"); s.TotalInstances != 0 {
		t.Fatalf("min 0 should start nothing, got %+v", s)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 10 {
		wg.Go(func() {
			if resp, body := h.call(t, "POST", "/function/cold", "x"); resp.StatusCode == 200 && body == "x" {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 {
		t.Fatalf("%d of 10 cold requests succeeded", ok.Load())
	}
	s := h.status(t, "cold")
	if s.ColdStarts != 1 || s.ReadyInstances != 1 {
		t.Fatalf("10 concurrent cold requests should share one start: %+v", s)
	}
}

func TestIdleScaleToZeroAndMin(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "idle", func(f *function.Function) { f.Scale.IdleTimeout = function.Duration(150 * time.Millisecond) })
	h.call(t, "GET", "/function/idle", "")
	if s := h.status(t, "idle"); s.ReadyInstances != 1 {
		t.Fatalf("after a call: %+v", s)
	}
	waitFor(t, "scale to zero", 3*time.Second, func() bool { return h.status(t, "idle").TotalInstances == 0 })

	h.deploy(t, "warm", func(f *function.Function) {
		f.Scale.Min = 2
		f.Scale.IdleTimeout = function.Duration(100 * time.Millisecond)
	})
	waitFor(t, "min instances", 5*time.Second, func() bool { return h.status(t, "warm").ReadyInstances == 2 })
	time.Sleep(300 * time.Millisecond)
	if s := h.status(t, "warm"); s.ReadyInstances != 2 {
		t.Fatalf("instances at min must not idle out: %+v", s)
	}
}

func TestConcurrencyLimitAndQueue(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxPending = 2 })
	h.deploy(t, "one", func(f *function.Function) {
		f.Scale.Max = 1
		f.Scale.MaxConcurrency = 1
	})
	h.call(t, "GET", "/function/one", "") // warm
	results := make(chan int, 3)
	for range 3 {
		go func() {
			resp, _ := h.call(t, "GET", "/function/one/sleep?ms=400", "")
			results <- resp.StatusCode
		}()
	}
	// 1 running + 2 queued: the next is refused.
	waitFor(t, "queue to fill", 3*time.Second, func() bool {
		h.gw.mu.RLock()
		p := h.gw.pools["default/one"]
		h.gw.mu.RUnlock()
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters) == 2
	})
	resp, body := h.call(t, "GET", "/function/one", "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "overloaded") {
		t.Fatalf("want 429 with Retry-After, got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	began := time.Now()
	for range 3 {
		if code := <-results; code != 200 {
			t.Fatalf("queued request got %d", code)
		}
	}
	// With maxConcurrency 1 they ran one after another.
	if took := time.Since(began); took < 700*time.Millisecond {
		t.Fatalf("3×400ms requests finished in %s: maxConcurrency 1 was not enforced", took)
	}
}

func TestTimeout(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "slow", func(f *function.Function) {
		f.Timeout = function.Duration(300 * time.Millisecond)
		f.Scale.Min = 1
	})
	waitFor(t, "instance", 5*time.Second, func() bool { return h.status(t, "slow").ReadyInstances == 1 })
	began := time.Now()
	resp, body := h.call(t, "GET", "/function/slow/sleep?ms=5000", "")
	if resp.StatusCode != 504 || !strings.Contains(body, "timed out") {
		t.Fatalf("want 504, got %d %s", resp.StatusCode, body)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("timeout answered after %s", took)
	}
	// The instance is still usable afterwards.
	if resp, _ := h.call(t, "GET", "/function/slow", ""); resp.StatusCode != 200 {
		t.Fatalf("after a timeout: %d", resp.StatusCode)
	}
}

func TestCrashGives502AndIsReplaced(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "crashy", func(f *function.Function) { f.Scale.Min = 1 })
	waitFor(t, "min instance", 5*time.Second, func() bool { return h.status(t, "crashy").ReadyInstances == 1 })
	_, before, _ := h.gw.Status("default", "crashy")
	began := time.Now()
	resp, body := h.call(t, "GET", "/function/crashy/crash", "")
	if resp.StatusCode != 502 || !strings.Contains(body, "instance_failed") {
		t.Fatalf("want 502, got %d %s", resp.StatusCode, body)
	}
	// An anonymous caller learns which function failed and where to look,
	// never the instance's address or the transport's error.
	if !strings.Contains(body, "default/crashy") || !strings.Contains(body, "nimbus logs crashy") ||
		strings.Contains(body, "127.0.0.1") || strings.Contains(body, "EOF") || strings.Contains(body, "testfn") {
		t.Fatalf("502 body: %s", body)
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("502 after %s, want under 1s", took)
	}
	waitFor(t, "replacement", 5*time.Second, func() bool {
		_, list, _ := h.gw.Status("default", "crashy")
		return len(list) == 1 && list[0].ID != before[0].ID && list[0].State == "ready"
	})
	if resp, _ := h.call(t, "GET", "/function/crashy", ""); resp.StatusCode != 200 {
		t.Fatalf("replacement does not serve: %d", resp.StatusCode)
	}
	if s := h.status(t, "crashy"); !strings.Contains(s.LastError, "exit") {
		t.Fatalf("last error should tell of the exit: %+v", s)
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxBodyBytes = 1000 })
	h.deploy(t, "echo", nil)
	resp, body := h.call(t, "POST", "/function/echo", strings.Repeat("x", 1001))
	if resp.StatusCode != 413 {
		t.Fatalf("declared length over limit: want 413, got %d %s", resp.StatusCode, body)
	}
	// Chunked, so the gateway learns the size only while streaming.
	req, _ := http.NewRequest("POST", h.srv.URL+"/function/echo", io.MultiReader(strings.NewReader(strings.Repeat("y", 3000))))
	req.ContentLength = -1
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 413 {
		t.Fatalf("streamed body over limit: want 413, got %d", r2.StatusCode)
	}
	if resp, body := h.call(t, "POST", "/function/echo", strings.Repeat("z", 1000)); resp.StatusCode != 200 || len(body) != 1000 {
		t.Fatalf("body at the limit: %d len %d", resp.StatusCode, len(body))
	}
}

func TestUpdateReplacesInstances(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "rolling", func(f *function.Function) { f.Env = map[string]string{"V": "1"} })
	_, body := h.call(t, "GET", "/function/rolling/env", "")
	if !strings.Contains(body, "V=1") {
		t.Fatal(body)
	}
	h.deploy(t, "rolling", func(f *function.Function) { f.Env = map[string]string{"V": "2"} })
	_, body = h.call(t, "GET", "/function/rolling/env", "")
	if !strings.Contains(body, "V=2") {
		t.Fatalf("new revision not served:\n%s", body)
	}
	waitFor(t, "old instance to stop", 5*time.Second, func() bool { return h.status(t, "rolling").TotalInstances == 1 })
}

func TestRemoveStopsInstances(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "gone", func(f *function.Function) { f.Scale.Min = 1 })
	waitFor(t, "instance", 5*time.Second, func() bool { return h.status(t, "gone").ReadyInstances == 1 })
	_, list, _ := h.gw.Status("default", "gone")
	addr := list[0].Addr
	h.gw.Remove("default", "gone")
	h.sc.Remove("default", "gone")
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Fatal("instance still serves after Remove")
	}
	if resp, _ := h.call(t, "GET", "/function/gone", ""); resp.StatusCode != 404 {
		t.Fatalf("removed function: want 404, got %d", resp.StatusCode)
	}
}

func TestStdioThroughGateway(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "cat", func(f *function.Function) {
		f.Protocol = function.ProtocolStdio
		f.Command = []string{"./testfn", "stdio"}
	})
	resp, body := h.call(t, "POST", "/function/cat", "via stdio")
	if resp.StatusCode != 200 || body != "via stdio" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	resp, body = h.call(t, "POST", "/function/cat", "fail")
	if resp.StatusCode != 500 || strings.Contains(body, "asked to fail") {
		t.Fatalf("failing stdio: %d %q", resp.StatusCode, body)
	}
}

func TestStartFailure(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "broken", func(f *function.Function) { f.Command = []string{"./testfn", "fail"} })
	resp, body := h.call(t, "GET", "/function/broken", "")
	if resp.StatusCode != 503 || !strings.Contains(body, "start_failed") || strings.Contains(body, "refusing") {
		t.Fatalf("want 503 start_failed without the program's output, got %d %s", resp.StatusCode, body)
	}
	if s := h.status(t, "broken"); !strings.Contains(s.LastError, "refusing to start") {
		t.Fatalf("last error should carry the output for the operator: %+v", s)
	}
	h.logs.mu.Lock()
	defer h.logs.mu.Unlock()
	found := false
	for _, l := range h.logs.lines {
		found = found || (l.Stream == "stderr" && strings.Contains(l.Text, "refusing to start"))
	}
	if !found {
		t.Fatal("the program's stderr is not in the logs")
	}
}

// TestControlCharacters: an in-process request (an event, a queued call)
// whose header carries CR, LF or NUL is refused with a 400, not written
// raw to the function (which would split it into two requests); a NUL in
// the path is refused too.
func TestControlCharacters(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "echo", nil)
	for _, hdr := range []http.Header{
		{"X-Ok": {"a\r\nX-Injected: 1"}},
		{"X-Ok": {"a\nb"}},
		{"X-Ok": {"a\x00b"}},
		{"X-Bad\r\nName": {"v"}},
		{"Bad Name": {"v"}},
	} {
		// Built in process, as a queued call's attempt or an event
		// delivery is: nothing checked these headers before the gateway.
		req, _ := http.NewRequestWithContext(WithCallID(context.Background(), "c1"), "GET", "/function/echo/headers", nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.gw.ServeHTTP(rec, req)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "control character") {
			t.Errorf("%q: want 400 naming the control character, got %d %s", hdr, rec.Code, rec.Body)
		}
	}
	// Off the wire, net/http's server refuses them before the gateway
	// sees the request; the transport relies on that (see RoundTrip).
	for _, line := range []string{"X-Ok: a\x01b", "X-Ok: a\x00b", "X-Ok: a\rb", "X\x01Bad: v", "Bad Name: v"} {
		c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /function/echo/headers HTTP/1.1\r\nHost: x\r\n%s\r\nConnection: close\r\n\r\n", line)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("%q off the wire: want net/http's 400, got %v %v", line, resp, err)
		}
		c.Close()
	}
	resp, body := h.call(t, "GET", "/function/echo/headers%00x", "")
	if resp.StatusCode != 400 || !strings.Contains(body, "NUL") {
		t.Errorf("NUL in the path: %d %s", resp.StatusCode, body)
	}
	// The function was never handed a split request.
	resp, body = h.call(t, "GET", "/function/echo/headers", "")
	if resp.StatusCode != 200 || strings.Contains(body, "X-Injected") {
		t.Fatalf("after the refusals: %d %s", resp.StatusCode, body)
	}
}

// TestStalledBodies: 200 clients that promise a 10-byte body and send 1
// byte hold no instance slot: with one slot (maxConcurrency 1, max 1)
// normal calls are answered at once meanwhile, and each stalled client
// gets a 408 at the function's timeout. A large body that stalls streams
// (it holds the slot), fails at the timeout and frees the slot.
func TestStalledBodies(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "one", func(f *function.Function) {
		f.Scale.Max, f.Scale.MaxConcurrency = 1, 1
		f.Timeout = function.Duration(2 * time.Second)
	})
	h.call(t, "GET", "/function/one", "") // warm
	addr := h.srv.Listener.Addr().String()
	stall := func(length int) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /function/one HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nx", length)
		return c
	}
	began := time.Now()
	conns := make([]net.Conn, 200)
	for i := range conns {
		conns[i] = stall(10)
		defer conns[i].Close()
	}
	for i := range 5 {
		// Were the slot held by a stalled body, a call would wait out the
		// 2 s timeout: anything under it is the slot free (a busy machine
		// under the race detector takes over a second now and then).
		t0 := time.Now()
		resp, body := h.call(t, "POST", "/function/one", fmt.Sprint("normal ", i))
		if resp.StatusCode != 200 || body != fmt.Sprint("normal ", i) || time.Since(t0) >= 2*time.Second {
			t.Fatalf("a normal call beside 200 stalled ones: %d %q after %s", resp.StatusCode, body, time.Since(t0))
		}
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 408") {
			t.Fatalf("stalled client %d: %q %v", i, line, err)
		}
	}
	if took := time.Since(began); took < 1800*time.Millisecond || took > 5*time.Second {
		t.Fatalf("the 408s came after %s, want about the 2s timeout", took)
	}

	// A large body streams and holds the slot while it stalls, until the
	// timeout; then the slot is free at once.
	c := stall(1 << 20)
	defer c.Close()
	waitFor(t, "the large body to take the slot", 2*time.Second, func() bool {
		_, list, _ := h.gw.Status("default", "one")
		return len(list) == 1 && list[0].InFlight == 1
	})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !(strings.HasPrefix(line, "HTTP/1.1 408") || strings.HasPrefix(line, "HTTP/1.1 504")) {
		t.Fatalf("stalled large body: %q %v", line, err)
	}
	t0 := time.Now()
	// A slot still held would hold this call to the 2 s timeout.
	if resp, _ := h.call(t, "GET", "/function/one", ""); resp.StatusCode != 200 || time.Since(t0) >= 2*time.Second {
		t.Fatalf("after the large body's timeout: %d in %s", resp.StatusCode, time.Since(t0))
	}
	if _, list, _ := h.gw.Status("default", "one"); list[0].InFlight != 0 {
		t.Fatalf("a slot is still held: %+v", list)
	}
}

// TestOpenFaaSHeadersAndNamespace: responses carry X-Start-Time (unix
// nanoseconds, also sent to the function) and X-Duration-Seconds ("%f"
// seconds) as OpenFaaS's gateway and watchdogs give them, and OpenFaaS's
// name of the default namespace, openfaas-fn, reaches it.
func TestOpenFaaSHeadersAndNamespace(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "echo", nil)
	before := time.Now().UnixNano()
	resp, body := h.call(t, "GET", "/function/echo.openfaas-fn/headers", "")
	if resp.StatusCode != 200 {
		t.Fatalf("/function/echo.openfaas-fn: %d %s", resp.StatusCode, body)
	}
	start, err := strconv.ParseInt(resp.Header.Get("X-Start-Time"), 10, 64)
	if err != nil || start < before || start > time.Now().UnixNano() {
		t.Fatalf("X-Start-Time %q is not the call's start in unix nanoseconds", resp.Header.Get("X-Start-Time"))
	}
	if !strings.Contains(body, "X-Start-Time: "+resp.Header.Get("X-Start-Time")) {
		t.Fatalf("the function did not get X-Start-Time:\n%s", body)
	}
	if d := resp.Header.Get("X-Duration-Seconds"); !regexp.MustCompile(`^[0-9]+\.[0-9]{6}$`).MatchString(d) {
		t.Fatalf("X-Duration-Seconds %q is not %%f seconds", d)
	}
	if resp, _ := h.call(t, "POST", "/function/echo.openfaas-fn", "x"); resp.StatusCode != 200 {
		t.Fatalf("POST to openfaas-fn: %d", resp.StatusCode)
	}
}
