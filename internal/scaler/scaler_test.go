package scaler

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/autoscaler"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/store"
)

// fakeProvider records targets and reports what it was asked for as ready
// (a fake beside the logic under test; providertest checks real ones).
type fakeProvider struct {
	mu      sync.Mutex
	targets []provider.Target
	ready   int
	cpu     float64
	removed bool
}

func (p *fakeProvider) Name() string { return "fake" }
func (p *fakeProvider) Ensure(t provider.Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = append(p.targets, t)
}
func (p *fakeProvider) State(ns, name string) (provider.State, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s provider.State
	if len(p.targets) > 0 {
		t := p.targets[len(p.targets)-1]
		s.Revision, s.Desired = t.Revision, t.Replicas
		for range min(p.ready, t.Replicas) {
			s.Ready = append(s.Ready, provider.Endpoint{Revision: t.Revision})
		}
	}
	return s, true
}
func (p *fakeProvider) Remove(context.Context, string, string) { p.removed = true }
func (p *fakeProvider) Close(context.Context)                  {}
func (p *fakeProvider) CPU(context.Context, string, string) (float64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpu, true
}

func (p *fakeProvider) last() provider.Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.targets[len(p.targets)-1]
}

func setup(t *testing.T, mod func(*function.Function)) (*Scaler, *fakeProvider, *map[string]autoscaler.Sample) {
	p := &fakeProvider{ready: 100}
	load := map[string]autoscaler.Sample{}
	s := New(Options{Providers: map[string]provider.Provider{"process": p},
		Load: func(time.Time) map[string]autoscaler.Sample { return load }})
	fn := function.Function{Name: "f", Command: []string{"x"}, Package: "sha256:" + strings.Repeat("a", 64)}
	if mod != nil {
		mod(&fn)
	}
	fn = fn.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(store.Record{Function: fn, Revision: 1}); err != nil {
		t.Fatal(err)
	}
	return s, p, &load
}

func TestApplyActivateAndScale(t *testing.T) {
	s, p, _ := setup(t, func(f *function.Function) { f.Scale.MaxConcurrency = 10 })
	if got := p.last(); got.Replicas != 0 || got.Revision != 1 {
		t.Fatalf("a new function at min 0: %+v", got)
	}
	fn := p.last().Function
	s.Activate(fn, 1)
	if got := p.last().Replicas; got != 1 {
		t.Fatalf("activation: %d replicas", got)
	}
	n := len(p.targets)
	s.Activate(fn, 3) // one replica (target 7) holds 3: nothing to change
	if len(p.targets) != n {
		t.Fatalf("a second activation changed the target: %+v", p.last())
	}
	// A new revision keeps the count.
	fn.Env = map[string]string{"V": "2"}
	s.Apply(store.Record{Function: fn, Revision: 2})
	if got := p.last(); got.Replicas != 1 || got.Revision != 2 {
		t.Fatalf("new revision: %+v", got)
	}
	// The API's floor holds against no load.
	if n, ok := s.Scale("default", "f", 3); !ok || n != 3 {
		t.Fatalf("scale: %d %v", n, ok)
	}
	for i := range 120 {
		s.Step(context.Background(), time.Now().Add(time.Duration(i)*time.Second))
	}
	if got := p.last().Replicas; got != 3 {
		t.Fatalf("after 2 idle minutes with a floor of 3: %d", got)
	}
	st, _ := s.Status("default", "f")
	if st.Floor != 3 || st.Desired != 3 || st.Ready != 3 {
		t.Fatalf("status: %+v", st)
	}
	if _, ok := s.Scale("default", "nope", 1); ok {
		t.Fatal("scaled an unknown function")
	}
	s.Remove("default", "f")
	if !p.removed {
		t.Fatal("Remove did not reach the provider")
	}
}

func TestStepFollowsLoad(t *testing.T) {
	s, p, load := setup(t, func(f *function.Function) {
		f.Scale.MaxConcurrency, f.Scale.Max = 10, 20
		f.Scale.IdleTimeout = function.Duration(5 * time.Second)
	})
	now := time.Now()
	(*load)["default/f"] = autoscaler.Sample{Concurrency: 35} // 35 in flight, target 7 → 5
	for i := range 10 {
		s.Step(context.Background(), now.Add(time.Duration(i)*time.Second))
	}
	if got := p.last().Replicas; got != 5 {
		t.Fatalf("35 in flight at target 7: %d replicas", got)
	}
	st, _ := s.Status("default", "f")
	if !strings.Contains(st.Reason, "in flight") {
		t.Errorf("reason %q", st.Reason)
	}
	(*load)["default/f"] = autoscaler.Sample{}
	for i := range 100 {
		s.Step(context.Background(), now.Add(time.Duration(10+i)*time.Second))
	}
	if got := p.last().Replicas; got != 0 {
		t.Fatalf("idle for 100 s with a 5 s grace: %d replicas", got)
	}
}

func TestStepRPSAndCPU(t *testing.T) {
	target := 5.0
	s, p, load := setup(t, func(f *function.Function) {
		f.Scale.Type, f.Scale.Target, f.Scale.TargetUtilization = function.ScaleRPS, &target, 1
	})
	now := time.Now()
	(*load)["default/f"] = autoscaler.Sample{Requests: 10} // 10 req/s at 5 each
	for i := range 10 {
		s.Step(context.Background(), now.Add(time.Duration(i)*time.Second))
	}
	if got := p.last().Replicas; got != 2 {
		t.Fatalf("10 req/s at target 5: %d replicas", got)
	}

	cpuTarget := 250.0
	s, p, _ = setup(t, func(f *function.Function) {
		f.Scale.Type, f.Scale.Target, f.Scale.TargetUtilization = function.ScaleCPU, &cpuTarget, 1
	})
	p.cpu = 1000 // one CPU in all, 250m per replica → 4
	s.Scale("default", "f", 1)
	s.Scale("default", "f", 0) // leave it to the autoscaler, at 1 replica
	for i := range 10 {
		s.Step(context.Background(), now.Add(time.Duration(i)*time.Second))
	}
	if got := p.last().Replicas; got != 4 {
		t.Fatalf("1000m at 250m per replica: %d replicas", got)
	}
}

// TestBurst: the activator's ask for one replica more acts at once, asks
// made together add one replica, the asks held stay within a quarter again
// the decided count, and they lapse a tick after the last one, back to what
// the decider holds.
func TestBurst(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	p := &fakeProvider{ready: 100}
	s := New(Options{Providers: map[string]provider.Provider{"process": p}, Now: func() time.Time { return now }})
	fn := function.Function{Name: "f", Command: []string{"x"}, Package: "sha256:" + strings.Repeat("a", 64),
		Scale: function.Scale{Min: 8, Max: 16, MaxConcurrency: 1}}
	fn = fn.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(store.Record{Function: fn, Revision: 1}); err != nil {
		t.Fatal(err)
	}
	if got := p.last().Replicas; got != 8 {
		t.Fatalf("at min: %d", got)
	}
	n := len(p.targets)
	for range 5 { // five queued requests, the same report: one replica more
		s.Burst(fn, 9)
	}
	if got := p.last().Replicas; got != 9 || len(p.targets) != n+1 {
		t.Fatalf("five asks for 9: target %d after %d changes", got, len(p.targets)-n)
	}
	s.Burst(fn, 3)  // an ask below what is held changes nothing
	s.Burst(fn, 16) // beyond a quarter again the 8 decided: 10
	if got := p.last().Replicas; got != 10 {
		t.Fatalf("an ask for 16 with 8 decided: %d, want 10", got)
	}
	tick := time.Second // the default
	now = now.Add(tick - time.Millisecond)
	s.Burst(fn, 10) // renewed
	now = now.Add(tick - time.Millisecond)
	s.Step(context.Background(), now)
	if got := p.last().Replicas; got != 10 {
		t.Fatalf("within a tick of the last ask: %d", got)
	}
	now = now.Add(time.Millisecond)
	s.Step(context.Background(), now)
	if got := p.last().Replicas; got != 8 {
		t.Fatalf("a tick after the last ask, with no load: %d, want min 8", got)
	}
	s.Burst(function.Function{Name: "nope", Namespace: "default"}, 3) // unknown: ignored

	// An activation's count is not carried on by bursts: once its window
	// lapses, asks every 0.9 s hold only their own bound.
	s.Activate(fn, 40)
	if got := p.last().Replicas; got != 16 {
		t.Fatalf("an activation for 40 at max 16: %d", got)
	}
	for range 10 {
		now = now.Add(900 * time.Millisecond)
		s.Burst(fn, 16)
		s.Step(context.Background(), now)
	}
	if got := p.last().Replicas; got != 10 {
		t.Fatalf("bursts after an activation's window: %d, want a quarter again the 8 decided", got)
	}
}
