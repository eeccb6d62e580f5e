// Package providertest is the conformance suite of provider.Provider: a
// provider's tests call Run with a fixture that runs drivertest's testfn
// program on the provider's substrate. RunLocal runs it against a
// provider.Local over a driver's fixture.
package providertest

import (
	"context"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/driver/drivertest"
	"nimbus/internal/function"
	"nimbus/internal/provider"
)

// Fixture tells the suite how to make a provider and a function for it.
type Fixture struct {
	// New returns a provider reporting to watch and draining through drain.
	New func(t *testing.T, watch provider.Watcher, drain provider.Drainer) provider.Provider
	// Function returns a spec that runs testfn with args (Name is set by
	// the suite).
	Function func(args ...string) function.Function
	// ExternalRetry: the substrate retries failed starts on its own
	// schedule (Kubernetes's backoff), so the suite checks that a failure
	// is reported, not the provider's own backoff.
	ExternalRetry bool
}

// RunLocal runs the suite against provider.Local on a driver fixture.
func RunLocal(t *testing.T, fx drivertest.Fixture) {
	Run(t, Fixture{
		New: func(t *testing.T, watch provider.Watcher, drain provider.Drainer) provider.Provider {
			p := provider.NewLocal(provider.LocalOptions{Driver: fx.Driver, OpenPackage: fx.OpenPackage,
				Watch: watch, Drain: drain, StopGrace: 2 * time.Second})
			t.Cleanup(func() { p.Close(context.Background()) })
			return p
		},
		Function: func(args ...string) function.Function { return fx.Function(function.ProtocolHTTP, args...) },
	})
}

// Run runs every conformance test.
func Run(t *testing.T, fx Fixture) {
	t.Run("EnsureStartsAndStops", func(t *testing.T) { testEnsure(t, fx) })
	t.Run("NewRevisionRollsOver", func(t *testing.T) { testRollout(t, fx) })
	t.Run("ExitedReplicaIsReplaced", func(t *testing.T) { testCrash(t, fx) })
	t.Run("FailingStartBacksOff", func(t *testing.T) { testFailure(t, fx) })
	t.Run("RemoveStopsAll", func(t *testing.T) { testRemove(t, fx) })
}

// recorder keeps what a provider reported and what it asked to drain.
type recorder struct {
	mu      sync.Mutex
	states  []provider.State
	drained []string
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) watch(_, _ string, s provider.State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) drain(_ context.Context, _, _, id string) {
	r.mu.Lock()
	r.drained = append(r.drained, id)
	r.mu.Unlock()
}

func (r *recorder) last() provider.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return provider.State{}
	}
	return r.states[len(r.states)-1]
}

// until waits (30 s at most) for the last reported state to satisfy cond.
func (r *recorder) until(t *testing.T, what string, cond func(provider.State) bool) provider.State {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if s := r.last(); cond(s) {
			return s
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; last state %+v", what, r.last())
		}
	}
}

func target(fx Fixture, name string, rev uint64, n int, mod func(*function.Function)) provider.Target {
	fn := fx.Function()
	fn.Name = name
	if mod != nil {
		mod(&fn)
	}
	return provider.Target{Function: fn.WithDefaults(), Revision: rev, Replicas: n}
}

// call sends one request to an endpoint.
func call(e provider.Endpoint, path string) (int, string, error) {
	rt, url := e.Transport, "http://instance"+path
	if rt == nil {
		rt, url = http.DefaultTransport, "http://"+e.Addr+path
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func testEnsure(t *testing.T, fx Fixture) {
	r := newRecorder()
	p := fx.New(t, r.watch, r.drain)
	tg := target(fx, "ensure", 1, 2, nil)
	p.Ensure(tg)
	s := r.until(t, "2 ready replicas", func(s provider.State) bool { return s.ReadyOf(1) == 2 })
	if s.Desired != 2 || s.Revision != 1 || s.Failed != nil {
		t.Fatalf("state: %+v", s)
	}
	ids := map[string]bool{}
	for _, e := range s.Ready {
		ids[e.ID] = true
		if code, _, err := call(e, "/"); err != nil || code != 200 {
			t.Fatalf("endpoint %s does not serve: %d %v", e.ID, code, err)
		}
		if e.Started.IsZero() || e.StartTook <= 0 {
			t.Errorf("endpoint %s lacks its start time or duration: %+v", e.ID, e)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("two replicas share an id: %+v", s.Ready)
	}
	// The same target again changes nothing.
	p.Ensure(tg)
	time.Sleep(100 * time.Millisecond) // nothing to wait for: a start would have begun by now
	if s2, _ := p.State("default", "ensure"); s2.ReadyOf(1) != 2 || s2.Starting != 0 {
		t.Fatalf("repeating Ensure changed the replicas: %+v", s2)
	}

	// Down to one: the surplus is drained, then stops.
	tg.Replicas = 1
	p.Ensure(tg)
	s = r.until(t, "1 ready replica", func(s provider.State) bool { return len(s.Ready) == 1 })
	var gone provider.Endpoint
	for _, e := range r.lastReadyOf(2) {
		if e.ID != s.Ready[0].ID {
			gone = e
		}
	}
	waitDrained(t, r, gone.ID)
	waitGone(t, gone)

	// To zero.
	tg.Replicas = 0
	p.Ensure(tg)
	r.until(t, "no replica", func(s provider.State) bool { return len(s.Ready) == 0 && s.Desired == 0 })
	waitGone(t, s.Ready[0])
}

// lastReadyOf returns the last reported ready list of n endpoints.
func (r *recorder) lastReadyOf(n int) []provider.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.states) - 1; i >= 0; i-- {
		if len(r.states[i].Ready) == n {
			return r.states[i].Ready
		}
	}
	return nil
}

func waitDrained(t *testing.T, r *recorder, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		found := false
		for _, d := range r.drained {
			found = found || d == id
		}
		r.mu.Unlock()
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s was stopped without being drained first", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until an endpoint no longer answers.
func waitGone(t *testing.T, e provider.Endpoint) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, _, err := call(e, "/"); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s still answers after it was stopped", e.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testRollout(t *testing.T, fx Fixture) {
	r := newRecorder()
	p := fx.New(t, r.watch, r.drain)
	v1 := func(f *function.Function) { f.Env = map[string]string{"V": "one"} }
	p.Ensure(target(fx, "roll", 1, 2, v1))
	old := r.until(t, "revision 1 ready", func(s provider.State) bool { return s.ReadyOf(1) == 2 })
	p.Ensure(target(fx, "roll", 2, 2, func(f *function.Function) { f.Env = map[string]string{"V": "two"} }))
	s := r.until(t, "revision 2 alone", func(s provider.State) bool { return s.ReadyOf(2) == 2 && len(s.Ready) == 2 })
	for _, e := range s.Ready {
		if _, body, err := call(e, "/env"); err != nil || !strings.Contains(body, "V=two") {
			t.Fatalf("revision 2 replica serves %q (%v)", body, err)
		}
	}
	// Until revision 2 was ready, revision 1 stayed listed: at no point was
	// the list empty.
	r.mu.Lock()
	states := append([]provider.State(nil), r.states...)
	r.mu.Unlock()
	seen1 := false
	for _, st := range states {
		if st.ReadyOf(1) > 0 {
			seen1 = true
		}
		if seen1 && len(st.Ready) == 0 {
			t.Fatalf("the ready list emptied during the rollout: %+v", st)
		}
	}
	for _, e := range old.Ready {
		waitDrained(t, r, e.ID)
		waitGone(t, e)
	}
}

func testCrash(t *testing.T, fx Fixture) {
	r := newRecorder()
	p := fx.New(t, r.watch, r.drain)
	p.Ensure(target(fx, "crashy", 1, 1, nil))
	first := r.until(t, "a ready replica", func(s provider.State) bool { return s.ReadyOf(1) == 1 }).Ready[0]
	call(first, "/crash")
	s := r.until(t, "a replacement", func(s provider.State) bool { return s.ReadyOf(1) == 1 && s.Ready[0].ID != first.ID })
	if s.LastError == "" {
		t.Errorf("the exit is not reported: %+v", s)
	}
	if code, _, err := call(s.Ready[0], "/"); err != nil || code != 200 {
		t.Fatalf("replacement does not serve: %d %v", code, err)
	}
}

func testFailure(t *testing.T, fx Fixture) {
	r := newRecorder()
	p := fx.New(t, r.watch, r.drain)
	p.Ensure(target(fx, "broken", 1, 1, func(f *function.Function) { f.Command = append(f.Command, "fail") }))
	s := r.until(t, "the failure", func(s provider.State) bool { return s.Failed != nil })
	if s.LastError == "" || len(s.Ready) != 0 {
		t.Fatalf("failure state: %+v", s)
	}
	if fx.ExternalRetry {
		if !strings.Contains(s.LastError, "start") {
			t.Fatalf("the failure does not say the start failed: %+v", s)
		}
		p.Ensure(target(fx, "broken", 2, 1, nil))
		r.until(t, "the fixed revision", func(s provider.State) bool { return s.ReadyOf(2) == 1 && s.Failed == nil })
		return
	}
	// It keeps trying, with backoff (100 ms doubling): a second failure
	// comes, and the failures are never more than the backoff allows.
	began := time.Now()
	failures := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		for _, st := range r.states {
			if !st.RetryAt.IsZero() {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for failures() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	n, took := failures(), time.Since(began)
	if n < 2 {
		t.Fatalf("%d failed starts in %s: it does not retry", n, took)
	}
	if allowed := 2 + int(math.Log2(float64(took)/float64(100*time.Millisecond))); n > allowed {
		t.Fatalf("%d failed starts in %s: more than backing off from 100 ms allows (%d)", n, took, allowed)
	}
	if st, _ := p.State("default", "broken"); st.RetryAt.IsZero() && st.Starting == 0 || !strings.Contains(st.LastError, "start") {
		t.Fatalf("state does not say when it tries again or why: %+v", st)
	}
	// A fixed revision starts at once, whatever the backoff.
	p.Ensure(target(fx, "broken", 2, 1, nil))
	r.until(t, "the fixed revision", func(s provider.State) bool { return s.ReadyOf(2) == 1 && s.Failed == nil })
}

func testRemove(t *testing.T, fx Fixture) {
	r := newRecorder()
	p := fx.New(t, r.watch, r.drain)
	p.Ensure(target(fx, "gone", 1, 2, nil))
	s := r.until(t, "2 ready", func(s provider.State) bool { return s.ReadyOf(1) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.Remove(ctx, "default", "gone")
	for _, e := range s.Ready {
		waitGone(t, e)
	}
	if _, ok := p.State("default", "gone"); ok {
		t.Fatal("a removed function still has a state")
	}
}
