package gateway

import (
	"slices"
	"sync"
	"testing"
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
