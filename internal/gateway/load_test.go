package gateway

import (
	"sync"
	"testing"
	"time"

	"nimbus/internal/function"
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
