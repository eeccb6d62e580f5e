// Package scaler runs the autoscaler. Once a second it takes the load the
// gateway measured (Options.Load), adds it to each function's window,
// decides with autoscaler.Decide and gives the desired count to the
// function's provider (provider.Ensure). Between ticks, the activator's
// Activate raises the count at once for requests that found nothing ready,
// so a cold start never waits for a window.
//
// Desired replicas are state, not spec: Scale (the API, OpenFaaS's
// /system/scale-function and /system/alert) sets a floor the autoscaler
// decides above, with no new revision; a new revision keeps the count and
// the provider rolls the replicas over.
package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"nimbus/internal/autoscaler"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/store"
)

// Options configure a Scaler.
type Options struct {
	// Providers by runtime name.
	Providers map[string]provider.Provider
	// Load returns the load measured since its last call, by function key.
	Load func(now time.Time) map[string]autoscaler.Sample
	// Tick is how often decisions are made (1s by default).
	Tick time.Duration
	// OnDecision, if set, is told of every decision that changes the count
	// or the panic mode. It must not block.
	OnDecision func(key string, d autoscaler.Decision)
	Logger     *slog.Logger
}

// Scaler decides and keeps the replica counts of every function.
type Scaler struct {
	o Options

	mu  sync.Mutex
	fns map[string]*fnScale
	// ticks numbers the samples: a window's buckets are ticks, not wall
	// seconds, so a late or early tick never shares or skips a bucket.
	ticks int64
}

type fnScale struct {
	fn    function.Function
	rev   uint64
	prov  provider.Provider
	spec  autoscaler.Spec
	win   *autoscaler.Window
	st    autoscaler.State
	floor int // set through Scale
	last  autoscaler.Decision
	at    time.Time
}

// Status is a function's scaling state: what was decided, and what its
// provider has made of it.
type Status struct {
	Desired int `json:"desired"`
	// Ready and Starting count the current revision's replicas.
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	// Floor is the count set through the API, which the autoscaler does
	// not go below.
	Floor int `json:"floor,omitempty"`
	// Metric is what the function scales on; Panic, Reason and DecidedAt
	// describe the last decision.
	Metric    string    `json:"metric"`
	Panic     bool      `json:"panic,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	// StartError is the provider's last failure to start a replica (or a
	// replica's exit); RetryAt, when it backs off, is its next try.
	StartError string    `json:"startError,omitempty"`
	RetryAt    time.Time `json:"retryAt,omitzero"`
}

// New returns a Scaler; Run makes its decisions.
func New(o Options) *Scaler {
	if o.Tick == 0 {
		o.Tick = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Scaler{o: o, fns: map[string]*fnScale{}}
}

// Apply implements controller.Target: a new function starts at its min, a
// new revision keeps its count.
func (s *Scaler) Apply(rec store.Record) error {
	fn := rec.Function
	prov, ok := s.o.Providers[fn.Runtime]
	if !ok {
		return fmt.Errorf("function %s: runtime %q is not enabled", fn.Key(), fn.Runtime)
	}
	s.mu.Lock()
	f := s.fns[fn.Key()]
	if f == nil {
		f = &fnScale{}
		s.fns[fn.Key()] = f
	}
	if f.prov != nil && f.prov != prov {
		// The runtime changed: the old provider's replicas go.
		old := f.prov
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			old.Remove(ctx, fn.Namespace, fn.Name)
		}()
	}
	spec := autoscaler.SpecFor(fn.Scale)
	if f.win == nil || spec.StableWindow != f.spec.StableWindow {
		f.win = autoscaler.NewWindow(spec.StableWindow)
	}
	f.fn, f.rev, f.prov, f.spec = fn, rec.Revision, prov, spec
	f.st.Desired = s.bound(f, f.st.Desired)
	t := provider.Target{Function: fn, Revision: rec.Revision, Replicas: f.st.Desired}
	s.mu.Unlock()
	prov.Ensure(t)
	return nil
}

// bound keeps n within the spec's min and max and above the floor.
func (s *Scaler) bound(f *fnScale, n int) int {
	return min(max(n, f.spec.Min, f.floor), f.spec.Max)
}

// Remove implements controller.Target: the function's replicas stop.
func (s *Scaler) Remove(namespace, name string) {
	key := function.Key(namespace, name)
	s.mu.Lock()
	f := s.fns[key]
	delete(s.fns, key)
	s.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.prov.Remove(ctx, namespace, name)
}

// Activate is the activator's poke: requests found no free replica.
func (s *Scaler) Activate(fn function.Function, active int) {
	s.mu.Lock()
	f := s.fns[fn.Key()]
	if f == nil {
		s.mu.Unlock()
		return
	}
	d, next := autoscaler.Activate(f.spec, f.st, active, time.Now())
	next.Desired = s.bound(f, next.Desired)
	changed := next.Desired != f.st.Desired
	f.st = next
	var t provider.Target
	if changed {
		d.Desired = next.Desired
		f.last, f.at = d, time.Now()
		t = provider.Target{Function: f.fn, Revision: f.rev, Replicas: next.Desired}
	}
	prov := f.prov
	s.mu.Unlock()
	if changed {
		s.notify(fn.Key(), d)
		prov.Ensure(t)
	}
}

// Scale sets the count the API asked for: the function has at least that
// many replicas (within its max) until scaled again. It reports false for
// an unknown function.
func (s *Scaler) Scale(namespace, name string, replicas int) (int, bool) {
	key := function.Key(namespace, name)
	s.mu.Lock()
	f := s.fns[key]
	if f == nil {
		s.mu.Unlock()
		return 0, false
	}
	f.floor = min(max(replicas, 0), f.spec.Max)
	n := s.bound(f, replicas)
	f.st.Desired = n
	f.st.LastActive = time.Now() // the grace to zero counts from here
	f.last = autoscaler.Decision{Desired: n, Reason: fmt.Sprintf("scaled to %d through the API", replicas)}
	f.at = time.Now()
	t := provider.Target{Function: f.fn, Revision: f.rev, Replicas: n}
	prov, d := f.prov, f.last
	s.mu.Unlock()
	s.notify(key, d)
	prov.Ensure(t)
	return n, true
}

// Status reports a function's scaling state.
func (s *Scaler) Status(namespace, name string) (Status, bool) {
	s.mu.Lock()
	f := s.fns[function.Key(namespace, name)]
	if f == nil {
		s.mu.Unlock()
		return Status{}, false
	}
	st := Status{Desired: f.st.Desired, Floor: f.floor, Panic: f.last.Panic, Reason: f.last.Reason,
		DecidedAt: f.at, Metric: f.spec.Metric}
	prov, rev := f.prov, f.rev
	s.mu.Unlock()
	if ps, ok := prov.State(namespace, name); ok {
		st.Ready, st.Starting, st.StartError, st.RetryAt = ps.ReadyOf(rev), ps.Starting, ps.LastError, ps.RetryAt
	}
	return st, true
}

// Run decides every Tick until ctx ends.
func (s *Scaler) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Step(now)
		}
	}
}

// Step takes the load and makes one round of decisions at now.
func (s *Scaler) Step(now time.Time) {
	var load map[string]autoscaler.Sample
	if s.o.Load != nil {
		load = s.o.Load(now)
	}
	type ensure struct {
		prov provider.Provider
		t    provider.Target
		key  string
		d    autoscaler.Decision
	}
	cpu := s.measureCPU()
	var todo []ensure
	s.mu.Lock()
	s.ticks++
	bucket, end := time.Unix(s.ticks, 0), time.Unix(s.ticks+1, 0)
	for key, f := range s.fns {
		sample := load[key]
		sample.CPU = cpu[key]
		f.win.Add(bucket, sample.Value(f.spec.Metric, s.o.Tick))
		stable, _ := f.win.Average(end, f.spec.StableWindow)
		pan, _ := f.win.Average(end, f.spec.PanicWindow)
		cur, _ := f.win.Average(end, time.Second)
		ready := 0
		if st, ok := f.prov.State(f.fn.Namespace, f.fn.Name); ok {
			ready = st.ReadyOf(f.rev)
		}
		d, next := autoscaler.Decide(f.spec, autoscaler.Stats{Stable: stable, Panic: pan, Current: cur, Ready: ready}, f.st, now)
		if _, measured := cpu[key]; f.spec.Metric == function.ScaleCPU && !measured && ready > 0 {
			d.Reason += "; the CPU of its replicas cannot be measured here (process functions need nimbus as root with cgroup v2)"
		}
		if n := s.bound(f, d.Desired); n != d.Desired {
			d.Desired = n
			d.Reason += fmt.Sprintf("; held at %d, as scaled through the API", f.floor)
		}
		next.Desired = d.Desired
		changed := d.Desired != f.st.Desired || d.Panic != f.last.Panic
		f.st = next
		if changed {
			f.last, f.at = d, now
			todo = append(todo, ensure{f.prov, provider.Target{Function: f.fn, Revision: f.rev, Replicas: d.Desired}, key, d})
		}
	}
	s.mu.Unlock()
	for _, e := range todo {
		s.notify(e.key, e.d)
		e.prov.Ensure(e.t)
	}
}

// measureCPU reads, outside the lock, the CPU of every function that
// scales on it, from providers that can measure it.
func (s *Scaler) measureCPU() map[string]float64 {
	type job struct {
		key      string
		ns, name string
		rep      provider.CPUReporter
	}
	var jobs []job
	s.mu.Lock()
	for key, f := range s.fns {
		if f.spec.Metric != function.ScaleCPU {
			continue
		}
		if rep, ok := f.prov.(provider.CPUReporter); ok {
			jobs = append(jobs, job{key, f.fn.Namespace, f.fn.Name, rep})
		}
	}
	s.mu.Unlock()
	out := make(map[string]float64, len(jobs))
	for _, j := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), s.o.Tick/2)
		if v, ok := j.rep.CPU(ctx, j.ns, j.name); ok {
			out[j.key] = v
		}
		cancel()
	}
	return out
}

func (s *Scaler) notify(key string, d autoscaler.Decision) {
	s.o.Logger.Debug("scale", "function", key, "desired", d.Desired, "panic", d.Panic, "reason", d.Reason)
	if s.o.OnDecision != nil {
		s.o.OnDecision(key, d)
	}
}
