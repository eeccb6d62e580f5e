// Package scaler runs the autoscaler. Once a second every gateway takes the
// load it measured (Options.Load) and publishes it to the others
// (Cluster); every gateway keeps each function's window of the whole
// cluster's load, and the one holding the decider's lease decides with
// autoscaler.Decide and records the decision, which every gateway watches
// and gives to its provider (provider.Ensure). Between ticks, the
// activator's Activate starts a replica at once for requests that found
// nothing ready, so a cold start never waits for a window or the decider,
// and its Burst one more for requests that waited behind busy replicas.
//
// Desired replicas are state, not spec: Scale (the API, OpenFaaS's
// /system/scale-function and /system/alert) records a floor the decider
// decides above, with no new revision; a new revision keeps the count and
// the provider rolls the replicas over. With local providers (processes,
// containers on the gateway's machine) each gateway runs its share of the
// count, and one replica while it has traffic of its own.
package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
	// Cluster is shared with the other gateways; nil: a cluster of one.
	Cluster Cluster
	// Tick is how often load is published and decisions are made (1s).
	Tick time.Duration
	// Now is the clock (time.Now by default; tests pass a fake one).
	Now    func() time.Time
	Logger *slog.Logger
}

// Scaler decides and keeps the replica counts of every function.
type Scaler struct {
	o       Options
	cluster Cluster

	putMu sync.Mutex // serializes decision writes
	mu    sync.Mutex
	fns   map[string]*fnScale
	// recs are the cluster's records, also of functions not applied here
	// (yet).
	recs map[string]*record
	// ticks numbers the samples: a window's buckets are ticks, not wall
	// seconds, so a late or early tick never shares or skips a bucket.
	ticks int64
	// Other gateways: when each was last heard of, its latest ready
	// replicas, and the load it sent since this gateway's last tick.
	seen    map[string]time.Time
	ready   map[string]map[string]int
	pending map[string]autoscaler.Sample
	leader  bool
	// term is the highest decider's term seen: decisions of an earlier one
	// (which lost its lease while writing) are ignored.
	term uint64
	// early are activations of functions the gateway had before the scaler.
	early map[string]time.Time
}

type record struct {
	dec   *Decision
	floor int
}

type fnScale struct {
	key  string
	fn   function.Function
	rev  uint64
	prov provider.Provider
	spec autoscaler.Spec
	win  *autoscaler.Window
	// st is the decider's memory (kept by whichever gateway decides; the
	// others keep only its Desired in step with the records).
	st autoscaler.State
	// localActive is when this gateway last saw load of its own; boost is
	// what its last activation asked for, kept until boostUntil (a panic
	// window, by when the decider has seen that load); burst is what the
	// activator's asks hold, until burstUntil (a tick after the last).
	localActive time.Time
	boost       int
	boostUntil  time.Time
	burst       int
	burstUntil  time.Time
	// asked is what this gateway last gave its provider.
	asked, askedRev uint64
	askedN          int
	askedGrow       bool
}

// Status is a function's scaling state: what was decided, and what this
// gateway's provider has made of it.
type Status struct {
	// Desired is the cluster's count (the decision, raised to the floor
	// and bounded by the spec).
	Desired int `json:"desired"`
	// Local is this gateway's part of it; Ready and Starting count its
	// provider's replicas of the current revision.
	Local    int `json:"local"`
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	// Floor is the count set through the API, which the autoscaler does
	// not go below.
	Floor int `json:"floor,omitempty"`
	// Gateways is how many gateways share the function's load; Gateway
	// names this one, and Decider says whether it decides.
	Gateways int    `json:"gateways"`
	Gateway  string `json:"gateway"`
	Decider  bool   `json:"decider"`
	// Metric is what the function scales on; Panic, Reason, DecidedAt and
	// DecidedBy describe the last decision.
	Metric    string    `json:"metric"`
	Panic     bool      `json:"panic,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	DecidedBy string    `json:"decidedBy,omitempty"`
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
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Scaler{o: o, cluster: o.Cluster, fns: map[string]*fnScale{}, recs: map[string]*record{},
		seen: map[string]time.Time{}, ready: map[string]map[string]int{}, pending: map[string]autoscaler.Sample{},
		early: map[string]time.Time{}}
	if s.cluster == nil {
		s.cluster = NewHub(o.Now).Join("local")
	}
	return s
}

// Start follows the cluster: its records and the other gateways' load. It
// returns once the records held were read; it stops when ctx ends.
func (s *Scaler) Start(ctx context.Context) error {
	if err := s.cluster.SubscribeLoad(ctx, s.remoteLoad); err != nil {
		return err
	}
	return s.cluster.Watch(ctx, s.change)
}

func (s *Scaler) remoteLoad(l Load) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[l.Gateway] = s.o.Now()
	for key, v := range l.Samples {
		p := s.pending[key]
		p.Concurrency += v.Concurrency
		p.Requests += v.Requests
		p.CPU += v.CPU
		s.pending[key] = p
	}
	s.ready[l.Gateway] = l.Ready
}

func (s *Scaler) change(c Change) {
	s.mu.Lock()
	r := s.recs[c.Key]
	if r == nil {
		r = &record{}
		s.recs[c.Key] = r
	}
	switch {
	case c.Deleted:
		delete(s.recs, c.Key)
		r = &record{}
	case c.Decision != nil:
		d := c.Decision
		if d.Term < s.term || r.dec != nil && d.DecidedAt.Before(r.dec.DecidedAt) {
			s.mu.Unlock() // from a decider that lost its lease, or older than what is held
			return
		}
		s.term = d.Term
		r.dec = d
	case c.Floor != nil:
		r.floor = *c.Floor
	}
	if f := s.fns[c.Key]; f != nil {
		if c.Decision != nil && !s.leader {
			f.st.Desired = c.Decision.Desired
		}
		s.ensureLocked(f, s.o.Now())
	}
	s.mu.Unlock()
}

// desiredLocked is the cluster's count: the decision, raised to the floor,
// within min and max.
func (s *Scaler) desiredLocked(f *fnScale) int {
	n := f.st.Desired
	if r := s.recs[f.key]; r != nil {
		if r.dec != nil {
			n = r.dec.Desired
		}
		n = max(n, r.floor)
	}
	return min(max(n, f.spec.Min), f.spec.Max)
}

func (s *Scaler) floorLocked(key string) int {
	if r := s.recs[key]; r != nil {
		return r.floor
	}
	return 0
}

// membersLocked are the gateways heard of within LeaseTTL, and this one,
// sorted.
func (s *Scaler) membersLocked(now time.Time) []string {
	out := []string{s.cluster.ID()}
	for id, at := range s.seen {
		if now.Sub(at) <= LeaseTTL && id != s.cluster.ID() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// ensureLocked gives this gateway's provider what it should keep, if that
// changed: its share of the count; one while it has traffic of its own;
// and, for the panic window after an activation, what the activation
// asked for. It runs under s.mu, so targets reach the provider in the order
// they were decided (Ensure does not block).
func (s *Scaler) ensureLocked(f *fnScale, now time.Time) {
	n := s.desiredLocked(f)
	shared := provider.SharesReplicas(f.prov)
	if !shared {
		n = share(n, s.cluster.ID(), s.membersLocked(now))
	}
	if now.Sub(f.localActive) < f.spec.ZeroGrace {
		n = max(n, 1)
	}
	if now.Before(f.boostUntil) {
		n = max(n, f.boost)
	}
	if now.Before(f.burstUntil) {
		n = max(n, f.burst)
	}
	n = min(n, f.spec.Max)
	grow := shared && !s.leader
	if n == f.askedN && f.rev == f.askedRev && f.asked > 0 && grow == f.askedGrow {
		return
	}
	f.askedN, f.askedRev, f.asked, f.askedGrow = n, f.rev, f.asked+1, grow
	f.prov.Ensure(provider.Target{Function: f.fn, Revision: f.rev, Replicas: n, GrowOnly: grow})
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
		// New here (deployed, or nimbus restarted): a count the cluster
		// holds lasts at least the grace before the windows may lower it.
		f = &fnScale{key: fn.Key()}
		f.st.LastActive = s.o.Now()
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
		f.asked = 0
	}
	spec := autoscaler.SpecFor(fn.Scale)
	if f.win == nil || spec.StableWindow != f.spec.StableWindow {
		f.win = autoscaler.NewWindow(spec.StableWindow)
	}
	f.fn, f.rev, f.prov, f.spec = fn, rec.Revision, prov, spec
	f.st.Desired = s.desiredLocked(f)
	if at, ok := s.early[fn.Key()]; ok { // requests came before the function did
		f.localActive = at
		delete(s.early, fn.Key())
	}
	s.ensureLocked(f, s.o.Now())
	s.mu.Unlock()
	return nil
}

// Remove implements controller.Target: the function's replicas stop and
// its records go.
func (s *Scaler) Remove(namespace, name string) {
	key := function.Key(namespace, name)
	s.mu.Lock()
	f := s.fns[key]
	delete(s.fns, key)
	delete(s.early, key)
	s.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f.prov.Remove(ctx, namespace, name)
	if err := s.cluster.Delete(ctx, key); err != nil {
		s.o.Logger.Warn("could not delete a function's scaling records", "function", key, "err", err)
	}
}

// Activate is the activator's poke: requests found nothing ready here.
// Replicas start here at once — what autoscaler.Activate asks for, held
// for a panic window, and one while this gateway has traffic — and the
// decider records the count at its next tick from the load it then sees
// (not on the request's path: a synced write beside a starting process
// slows the start).
func (s *Scaler) Activate(fn function.Function, active int) {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fns[fn.Key()]
	if f == nil {
		s.early[fn.Key()] = now // the gateway has it and the scaler not yet
		return
	}
	f.localActive = now
	d, next := autoscaler.Activate(f.spec, f.st, active, now)
	if s.leader {
		f.st = next
	}
	f.boost, f.boostUntil = d.Desired, now.Add(min(f.spec.PanicWindow, f.spec.ZeroGrace))
	s.ensureLocked(f, now)
}

// Burst is the activator's ask for one replica more: a request waited
// behind busy replicas, and want is one more than this gateway's provider
// has ready and starting. Like an activation it acts here at once; it is
// held for a tick after the last ask, by when the decider's windows have
// seen the load (or not: a stall of a moment is not worth a replica).
// Asks made together ask for the same count, so they add one replica, not
// one each, and the asks held stay within a quarter again this gateway's
// share (autoscaler.Burst).
func (s *Scaler) Burst(fn function.Function, want int) {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fns[fn.Key()]
	if f == nil {
		return
	}
	f.localActive = now
	if !now.Before(f.burstUntil) {
		f.burst = 0
	}
	// What is held stays within the bound of the count decided now (which
	// may have fallen since an earlier ask).
	decided := s.desiredLocked(f)
	if !provider.SharesReplicas(f.prov) {
		decided = share(decided, s.cluster.ID(), s.membersLocked(now))
	}
	decided = max(decided, 1)
	f.burst = autoscaler.Burst(f.spec, decided, max(f.burst, want))
	f.burstUntil = now.Add(min(s.o.Tick, f.spec.ZeroGrace))
	s.ensureLocked(f, now)
}

// recordLocked keeps a decision this gateway made before its echo comes.
func (s *Scaler) recordLocked(key string, d Decision) {
	r := s.recs[key]
	if r == nil {
		r = &record{}
		s.recs[key] = r
	}
	r.dec = &d
}

func (s *Scaler) publishDecision(key string, d Decision) {
	// One write at a time, and only the latest decision: an activation's
	// write, made in the background, must not land after a later one.
	s.putMu.Lock()
	defer s.putMu.Unlock()
	s.mu.Lock()
	r := s.recs[key]
	latest := r != nil && r.dec != nil && r.dec.DecidedAt.Equal(d.DecidedAt) && r.dec.Desired == d.Desired
	s.mu.Unlock()
	if !latest {
		return
	}
	s.o.Logger.Debug("scale", "function", key, "desired", d.Desired, "panic", d.Panic, "reason", d.Reason)
	// Within a tick: a decider slower than that may have lost its lease
	// (whose writes the others then ignore by their term).
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Tick)
	defer cancel()
	if err := s.cluster.PutDecision(ctx, key, d); err != nil {
		s.o.Logger.Warn("could not record a scaling decision", "function", key, "err", err)
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
	floor := min(max(replicas, 0), f.spec.Max)
	s.mu.Unlock()
	// The API's write waits for the store; the function may be removed
	// meanwhile (checked again below).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cluster.PutFloor(ctx, key, floor); err != nil {
		s.o.Logger.Warn("could not record a scale", "function", key, "err", err)
		return 0, false
	}
	now := s.o.Now()
	s.mu.Lock()
	if f = s.fns[key]; f == nil {
		s.mu.Unlock()
		return 0, false
	}
	r := s.recs[key]
	if r == nil {
		r = &record{}
		s.recs[key] = r
	}
	r.floor = floor
	f.st.LastActive = now // the grace to zero counts from here
	n := s.desiredLocked(f)
	s.ensureLocked(f, now)
	s.mu.Unlock()
	return n, true
}

// Status reports a function's scaling state.
func (s *Scaler) Status(namespace, name string) (Status, bool) {
	s.mu.Lock()
	key := function.Key(namespace, name)
	f := s.fns[key]
	if f == nil {
		s.mu.Unlock()
		return Status{}, false
	}
	now := s.o.Now()
	st := Status{Desired: s.desiredLocked(f), Local: f.askedN, Floor: s.floorLocked(key), Metric: f.spec.Metric,
		Gateways: len(s.membersLocked(now)), Gateway: s.cluster.ID(), Decider: s.leader}
	if r := s.recs[key]; r != nil && r.dec != nil {
		st.Panic, st.Reason, st.DecidedAt, st.DecidedBy = r.dec.Panic, r.dec.Reason, r.dec.DecidedAt, r.dec.By
	}
	if st.Floor > 0 && st.Floor >= st.Desired {
		if st.Reason != "" {
			st.Reason = "; the autoscaler asked: " + st.Reason
		}
		st.Reason = fmt.Sprintf("scaled to %d through the API", st.Floor) + st.Reason
	}
	prov, rev := f.prov, f.rev
	s.mu.Unlock()
	if ps, ok := prov.State(namespace, name); ok {
		st.Ready, st.Starting, st.StartError, st.RetryAt = ps.ReadyOf(rev), ps.Starting, ps.LastError, ps.RetryAt
	}
	return st, true
}

// Leader reports whether this gateway made the last round of decisions.
func (s *Scaler) Leader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// Run publishes and decides every Tick until ctx ends.
func (s *Scaler) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Step(ctx, now)
		}
	}
}

// Step takes this gateway's load, publishes it, adds it and the others'
// to the windows and, holding the lease, makes one round of decisions.
func (s *Scaler) Step(ctx context.Context, now time.Time) {
	var load map[string]autoscaler.Sample
	if s.o.Load != nil {
		load = s.o.Load(now)
	}
	cpu := s.measureCPU()
	out := Load{Gateway: s.cluster.ID(), At: now, Samples: map[string]autoscaler.Sample{}, Ready: map[string]int{}}
	s.mu.Lock()
	for key, f := range s.fns {
		smp := load[key]
		smp.CPU = cpu[key]
		out.Samples[key] = smp
		if ps, ok := f.prov.State(f.fn.Namespace, f.fn.Name); ok {
			out.Ready[key] = ps.ReadyOf(f.rev)
		}
	}
	s.mu.Unlock()
	pubCtx, cancel := context.WithTimeout(ctx, s.o.Tick)
	if err := s.cluster.PublishLoad(pubCtx, out); err != nil {
		s.o.Logger.Debug("could not publish this gateway's load", "err", err)
	}
	term, lead, err := s.cluster.Lead(pubCtx)
	cancel()
	if err != nil {
		s.o.Logger.Debug("could not take the decider's lease", "err", err)
	}

	var puts []Decision
	var putKeys []string
	s.mu.Lock()
	if lead != s.leader {
		s.o.Logger.Info("scaling decisions", "decider", lead, "gateway", s.cluster.ID())
	}
	s.leader = lead
	if lead {
		s.term = max(s.term, term)
	}
	s.ticks++
	bucket, end := time.Unix(s.ticks, 0), time.Unix(s.ticks+1, 0)
	members := s.membersLocked(now)
	for key, f := range s.fns {
		smp := out.Samples[key]
		if smp.Concurrency > 0 || smp.Requests > 0 {
			f.localActive = now
		}
		ready := out.Ready[key]
		for _, id := range members {
			// Shared replicas are every gateway's: counted once.
			if id != s.cluster.ID() && !provider.SharesReplicas(f.prov) {
				ready += s.ready[id][key]
			}
		}
		p := s.pending[key]
		smp.Concurrency += p.Concurrency
		smp.Requests += p.Requests
		smp.CPU += p.CPU
		f.win.Add(bucket, smp.Value(f.spec.Metric, s.o.Tick))
		// Every gateway knows when the cluster last had load, so that a
		// new decider does not take a busy function for an idle one.
		if cur, _ := f.win.Average(end, time.Second); cur > 0 {
			f.st.LastActive = now
		}
		if !lead {
			s.ensureLocked(f, now)
			continue
		}
		stable, _ := f.win.Average(end, f.spec.StableWindow)
		pan, _ := f.win.Average(end, f.spec.PanicWindow)
		cur, _ := f.win.Average(end, time.Second)
		f.st.Desired = s.desiredLocked(f)
		d, next := autoscaler.Decide(f.spec, autoscaler.Stats{Stable: stable, Panic: pan, Current: cur, Ready: ready}, f.st, now)
		if _, measured := cpu[key]; f.spec.Metric == function.ScaleCPU && !measured && ready > 0 {
			d.Reason += "; the CPU of its replicas cannot be measured here (process functions need nimbus as root with cgroup v2)"
		}
		if floor := s.floorLocked(key); d.Desired < floor {
			d.Desired = min(floor, f.spec.Max)
			d.Reason += fmt.Sprintf("; held at %d, as scaled through the API", floor)
		}
		next.Desired = d.Desired
		prev := s.recs[key]
		changed := prev == nil || prev.dec == nil || prev.dec.Desired != d.Desired || prev.dec.Panic != d.Panic
		f.st = next
		if changed {
			dec := Decision{Desired: d.Desired, Panic: d.Panic, Reason: d.Reason, DecidedAt: now, By: s.cluster.ID(), Term: s.term}
			s.recordLocked(key, dec)
			puts, putKeys = append(puts, dec), append(putKeys, key)
		}
		s.ensureLocked(f, now)
	}
	s.pending = map[string]autoscaler.Sample{}
	s.mu.Unlock()
	for i, d := range puts {
		s.publishDecision(putKeys[i], d)
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
