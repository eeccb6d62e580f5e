package gateway

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/function"
	"nimbus/internal/provider"
)

// TestLoadReturnsToZero: after requests that queued and ran, the pool's
// count of requests in flight or waiting is back at zero, and the load it
// reports for a quiet second is zero.
func TestLoadReturnsToZero(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "busy", func(f *function.Function) {
		f.Scale.MaxConcurrency, f.Scale.Max = 1, 3
	})
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() { h.call(t, "GET", "/function/busy/sleep?ms=20", "") })
	}
	wg.Wait()
	h.gw.mu.RLock()
	p := h.gw.pools["default/busy"]
	h.gw.mu.RUnlock()
	p.mu.Lock()
	active := p.active
	p.mu.Unlock()
	if active != 0 {
		t.Fatalf("%d requests still counted in flight or waiting after all answered", active)
	}
	h.gw.TakeLoad(time.Now())
	time.Sleep(50 * time.Millisecond)
	if s := h.gw.TakeLoad(time.Now())["default/busy"]; s.Concurrency != 0 || s.Requests != 0 {
		t.Fatalf("a quiet interval reads %+v", s)
	}
}

// TestPickDuringRollout: the current revision's instances are preferred,
// and older ones take what the new ones cannot hold, so a rollout never
// shrinks capacity to the first new instance's.
func TestPickDuringRollout(t *testing.T) {
	g := New(Options{Metrics: NewMetrics(prometheus.NewRegistry())})
	fn := function.Function{Name: "r", Namespace: "default", Scale: function.Scale{MaxConcurrency: 1}}
	p := newPool(g, fn, 2)
	p.setState(provider.State{Seq: 1, Revision: 2, Ready: []provider.Endpoint{
		{ID: "new", Revision: 2, Addr: "127.0.0.1:1"},
		{ID: "old-1", Revision: 1, Addr: "127.0.0.1:2"},
		{ID: "old-2", Revision: 1, Addr: "127.0.0.1:3"},
	}})
	var got []string
	p.mu.Lock()
	for range 4 {
		in := p.pickLocked()
		if in == nil {
			got = append(got, "none")
			continue
		}
		in.inflight++
		got = append(got, in.ID)
	}
	p.mu.Unlock()
	if got[0] != "new" || got[3] != "none" || !slices.Contains(got, "old-1") || !slices.Contains(got, "old-2") {
		t.Fatalf("picks %v: want the new instance first, then the old ones, then none", got)
	}
	// A report older than the one taken is dropped.
	p.setState(provider.State{Seq: 1, Revision: 2})
	p.mu.Lock()
	n := len(p.insts)
	p.mu.Unlock()
	if n != 3 {
		t.Fatalf("a stale report emptied the pool: %d instances", n)
	}
}

// TestBurst: a request queued behind busy replicas asks for one replica
// more once it has waited half a request's mean hold of a slot; requests
// queued together ask for the same count; nothing is asked beyond max,
// nor for a function at zero (the activation's path) or a request granted
// in time.
func TestBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var asked []int
		g := New(Options{Metrics: NewMetrics(prometheus.NewRegistry()), Burst: func(fn function.Function, want int) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, want)
		}})
		fn := function.Function{Name: "b", Namespace: "default", Scale: function.Scale{Max: 3, MaxConcurrency: 1}}
		p := newPool(g, fn, 1)
		p.setState(provider.State{Seq: 1, Revision: 1, Ready: []provider.Endpoint{{ID: "a", Revision: 1, Addr: "127.0.0.1:1"}}})
		in, _, err := p.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		p.release(in, 40*time.Millisecond) // a request holds a slot 40 ms: burst after 20
		if in, _, err = p.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := func() []int {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(asked)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		queue := func(n int) {
			for range n {
				wg.Go(func() {
					if in, _, err := p.acquire(ctx); err == nil {
						p.release(in, 0)
					}
				})
			}
		}
		queue(3)
		time.Sleep(19 * time.Millisecond)
		synctest.Wait()
		if a := got(); len(a) != 0 {
			t.Fatalf("asked %v before the requests waited half a hold", a)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if a := got(); !slices.Equal(a, []int{2, 2, 2}) {
			t.Fatalf("three requests queued behind one busy replica asked %v, want [2 2 2]", a)
		}
		// The provider starts one: a request queued now asks for one more
		// than ready and starting.
		p.setState(provider.State{Seq: 2, Revision: 1, Starting: 1, Ready: []provider.Endpoint{{ID: "a", Revision: 1, Addr: "127.0.0.1:1"}}})
		queue(1)
		time.Sleep(21 * time.Millisecond)
		synctest.Wait()
		if a := got(); !slices.Equal(a, []int{2, 2, 2, 3}) {
			t.Fatalf("with one starting, asked %v", a)
		}
		// At max, nothing more is asked.
		p.setState(provider.State{Seq: 3, Revision: 1, Starting: 2, Ready: []provider.Endpoint{{ID: "a", Revision: 1, Addr: "127.0.0.1:1"}}})
		queue(1)
		time.Sleep(time.Second)
		synctest.Wait()
		if a := got(); len(a) != 4 {
			t.Fatalf("at max 3 (1 ready, 2 starting), asked %v", a)
		}
		// A request granted before its wait is up asks nothing.
		cancel()
		wg.Wait()
		ctx, cancel = context.WithCancel(t.Context())
		defer cancel()
		queue(1)
		time.Sleep(5 * time.Millisecond)
		p.release(in, 40*time.Millisecond)
		wg.Wait()
		time.Sleep(time.Second)
		if a := got(); len(a) != 4 {
			t.Fatalf("a request granted in time asked: %v", a)
		}
		// A function at zero takes the activation's path, not a burst.
		cold := newPool(g, function.Function{Name: "c", Namespace: "default", Scale: function.Scale{Max: 3, MaxConcurrency: 1}}, 1)
		cctx, ccancel := context.WithTimeout(t.Context(), time.Second)
		defer ccancel()
		if _, _, err := cold.acquire(cctx); err != ErrNoInstance {
			t.Fatalf("a function at zero: %v", err)
		}
		if a := got(); len(a) != 4 {
			t.Fatalf("a cold request asked for a burst: %v", a)
		}
	})
}
