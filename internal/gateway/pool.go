package gateway

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/internal/autoscaler"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/series"
)

// pool is the activator of one function: it holds the function's ready
// endpoints (from its provider) with their in-flight counts, hands each
// request the least-loaded one with a free slot, and queues requests
// (bounded) while none has one, telling the autoscaler at once so that a
// function at zero starts without waiting for a window, and asking for one
// replica more when a request waits behind busy ones. It never starts or
// stops a replica itself. All fields under mu; the counters are atomic.
type pool struct {
	g   *Gateway
	key string

	mu       sync.Mutex
	fn       function.Function
	rev      uint64
	insts    []*instance // ready: the provider's endpoints
	retiring []*instance // taken out of the provider's list: finishing in-flight work
	waiters  []*waiter
	seq      uint64 // of the provider's last State taken
	starting int    // replicas the provider is starting for the current revision
	failed   error  // the provider's start failure, while nothing is ready or starting
	reason   string // the failure's reason callers may be told (provider.State.Reason)
	closed   bool

	// Load for the autoscaler: requests in flight or waiting, integrated
	// over time since the last take.
	active   int
	area     float64 // request-seconds
	lastLoad time.Time
	lastTake time.Time
	begun    atomic.Int64 // requests that reached the pool
	// hold is the mean time a request holds a slot, in seconds (an
	// exponentially weighted average; 0 until one was released).
	hold float64

	spec atomic.Pointer[function.Function] // current spec, read without mu on the request path

	invocations atomic.Int64
	failures    atomic.Int64 // 5xx answers
	coldStarts  atomic.Int64
	lastErr     atomic.Pointer[lastError]
	m           *fnMetrics
}

type lastError struct {
	At  time.Time
	Msg string
}

// instance is a ready endpoint with its load, guarded by pool.mu.
type instance struct {
	provider.Endpoint
	proxy    proxyHandler
	inflight int
	served   int64
	lastUsed time.Time
	stopping bool
	drained  chan struct{} // closed once stopping with nothing in flight
	// closeIdle drops pooled connections to the instance, if any.
	closeIdle func()
}

type waiter struct {
	ch chan grant // buffered 1
}

type grant struct {
	inst *instance
	err  error
}

func newPool(g *Gateway, fn function.Function, rev uint64) *pool {
	p := &pool{g: g, key: fn.Key(), fn: fn, rev: rev, m: g.metrics.forFunction(fn)}
	p.lastLoad, p.lastTake = time.Now(), time.Now()
	p.spec.Store(&fn)
	return p
}

func (p *pool) setError(msg string) {
	p.lastErr.Store(&lastError{At: time.Now(), Msg: msg})
}

// loadLocked adds delta to the requests in flight or waiting.
func (p *pool) loadLocked(delta int) { p.loadAtLocked(delta, time.Now()) }

func (p *pool) loadAtLocked(delta int, now time.Time) {
	p.area += float64(p.active) * now.Sub(p.lastLoad).Seconds()
	p.lastLoad = now
	p.active += delta
}

// takeLoad returns the load since the last take: the average requests in
// flight or waiting, and the requests begun.
func (p *pool) takeLoad(now time.Time, begunBefore int64) (autoscaler.Sample, int64) {
	p.mu.Lock()
	if now.Before(p.lastLoad) { // a request came in after the tick fired
		now = p.lastLoad
	}
	p.area += float64(p.active) * now.Sub(p.lastLoad).Seconds()
	since := p.lastTake
	area := p.area
	p.area, p.lastLoad, p.lastTake = 0, now, now
	p.mu.Unlock()
	begun := p.begun.Load()
	s := autoscaler.Sample{Requests: float64(begun - begunBefore)}
	if d := now.Sub(since).Seconds(); d > 0 {
		s.Concurrency = area / d
	}
	return s, begun
}

// acquire returns an instance with a free slot, waiting (bounded by ctx) for
// one to start or free up. cold reports that the request had to wait for a start.
func (p *pool) acquire(ctx context.Context) (inst *instance, cold bool, err error) {
	p.begun.Add(1)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrGone
	}
	if inst := p.pickLocked(); inst != nil {
		inst.inflight++
		p.loadLocked(1)
		p.mu.Unlock()
		return inst, false, nil
	}
	if p.failed != nil && p.starting == 0 && len(p.insts) == 0 {
		// The provider is backing off after failed starts: say so now
		// rather than hold the request; the autoscaler still hears of it.
		fn, active := p.fn, p.active+1
		p.mu.Unlock()
		p.g.activate(fn, active)
		return nil, true, ErrStartFailed
	}
	if len(p.waiters) >= p.g.opts.MaxPending {
		p.mu.Unlock()
		return nil, false, ErrOverloaded
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.loadLocked(1)
	cold = p.readyOfRevLocked() == 0
	// With nothing of this revision ready, tell the autoscaler at once when
	// the queue outgrows what is starting. A function that has replicas and
	// is busy is left to the autoscaler's windows: a momentary queue there
	// is not worth a replica.
	poke := cold && len(p.waiters) > p.starting*p.fn.Scale.MaxConcurrency
	fn, active := p.fn, p.active
	// With replicas busy, a request that waits longer than half a
	// request's hold asks for one more replica (burst) rather than wait for
	// the next tick's window.
	var burst <-chan time.Time
	if !cold && p.g.opts.Burst != nil {
		t := time.NewTimer(p.burstAfterLocked())
		defer t.Stop()
		burst = t.C
	}
	p.mu.Unlock()
	if poke {
		p.g.activate(fn, active)
	}

	for waiting := true; waiting; {
		select {
		case g := <-w.ch:
			return g.inst, cold, g.err
		case <-burst:
			burst = nil
			p.burst(w)
		case <-ctx.Done():
			waiting = false
		}
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.loadLocked(-1)
			p.mu.Unlock()
			return nil, cold, ErrNoInstance
		}
	}
	p.mu.Unlock()
	// Granted while we gave up: give the slot back. (A failure granted
	// was counted out by whoever failed it.)
	if g := <-w.ch; g.inst != nil {
		p.release(g.inst, 0)
	}
	return nil, cold, ErrNoInstance
}

// Bounds of the wait before a burst.
const (
	minBurstAfter     = 2 * time.Millisecond
	unknownBurstAfter = 10 * time.Millisecond
	maxBurstAfter     = time.Second // the autoscaler's tick sees the queue by then
)

// burstAfterLocked is how long a queued request waits before it asks for
// a replica more: half the mean hold of a slot, within bounds.
func (p *pool) burstAfterLocked() time.Duration {
	if p.hold == 0 {
		return unknownBurstAfter
	}
	return min(max(time.Duration(p.hold*float64(time.Second)/2), minBurstAfter), maxBurstAfter)
}

// burst asks the autoscaler for one replica more than are ready and
// starting, if the waiter w is still queued behind busy replicas. The
// count asked for depends only on the provider's last report, so requests
// that wait together ask for the same count: a stall of the machine, which
// queues everything, adds one replica at a time, not one per request.
func (p *pool) burst(w *waiter) {
	p.mu.Lock()
	queued := slices.Contains(p.waiters, w)
	want := p.readyOfRevLocked() + p.starting + 1
	fn, failed := p.fn, p.failed != nil
	p.mu.Unlock()
	if queued && !failed && want <= fn.Scale.Max {
		p.g.opts.Burst(fn, want)
	}
}

// readyOfRevLocked counts the ready instances of the current revision.
func (p *pool) readyOfRevLocked() int {
	n := 0
	for _, in := range p.insts {
		if in.Revision == p.rev {
			n++
		}
	}
	return n
}

// pickLocked returns the ready instance with the fewest requests in flight
// that has a free slot, or nil. Instances of the current revision are
// preferred; during a rollout older ones take what the new ones cannot.
func (p *pool) pickLocked() *instance {
	var best, old *instance
	limit := p.fn.Scale.MaxConcurrency
	for _, in := range p.insts {
		if in.inflight >= limit {
			continue
		}
		if in.Revision == p.rev {
			if best == nil || in.inflight < best.inflight {
				best = in
			}
		} else if old == nil || in.inflight < old.inflight {
			old = in
		}
	}
	if best != nil {
		return best
	}
	return old
}

// release gives a slot back, held for held (0: not measured), and hands
// it to the oldest waiter.
func (p *pool) release(in *instance, held time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if held > 0 {
		const alpha = 0.2
		if p.hold == 0 {
			p.hold = held.Seconds()
		} else {
			p.hold += alpha * (held.Seconds() - p.hold)
		}
	}
	p.loadAtLocked(-1, now) // this request is done; a waiter given the slot was counted when it queued
	in.inflight--
	in.served++
	in.lastUsed = now
	if in.stopping {
		if in.inflight == 0 {
			p.retiring = remove(p.retiring, in)
			close(in.drained)
		}
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		in.inflight++
		w.ch <- grant{inst: in}
	}
}

// setState takes the provider's view of the function's replicas: new
// endpoints join (and take waiting requests), gone ones retire.
func (p *pool) setState(st provider.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || st.Seq != 0 && st.Seq <= p.seq {
		return // an older report arriving late
	}
	p.seq = st.Seq
	had := len(p.insts)
	seen := make(map[string]bool, len(st.Ready))
	var added []*instance
	for _, e := range st.Ready {
		seen[e.ID] = true
		if p.findLocked(e.ID) != nil {
			continue
		}
		in := &instance{Endpoint: e, lastUsed: time.Now(), drained: make(chan struct{})}
		in.proxy = p.g.newProxy(in)
		added = append(added, in)
	}
	for _, in := range append([]*instance(nil), p.insts...) {
		if !seen[in.ID] {
			p.retireLocked(in)
		}
	}
	// The provider lists the current revision first; keep that order.
	order := make(map[string]int, len(st.Ready))
	for i, e := range st.Ready {
		order[e.ID] = i
	}
	p.insts = append(p.insts, added...)
	sortByOrder(p.insts, order)
	// Starting and failures are of the provider's target revision: they
	// say nothing of this one until the provider has it too.
	p.starting, p.failed, p.reason = 0, nil, ""
	if st.Revision == p.rev {
		p.starting = st.Starting
		if st.Failed != nil && st.ReadyOf(p.rev) == 0 {
			p.failed, p.reason = st.Failed, st.Reason
		}
	}
	if st.LastError != "" {
		p.lastErr.Store(&lastError{At: st.LastErrorAt, Msg: st.LastError})
	}
	p.m.setInstances(len(p.insts))
	if had == 0 && len(added) > 0 && len(p.waiters) > 0 {
		p.coldStarts.Add(1)
		p.m.coldStart(added[0].StartTook)
	}
	p.grantLocked()
	if p.failed != nil && p.starting == 0 && len(p.insts) == 0 {
		for _, w := range p.waiters {
			w.ch <- grant{err: ErrStartFailed}
		}
		p.loadLocked(-len(p.waiters))
		p.waiters = nil
	}
}

// grantLocked hands free slots to waiting requests, oldest first.
func (p *pool) grantLocked() {
	for len(p.waiters) > 0 {
		in := p.pickLocked()
		if in == nil {
			return
		}
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		in.inflight++
		w.ch <- grant{inst: in}
	}
}

func (p *pool) findLocked(id string) *instance {
	for _, in := range p.insts {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func sortByOrder(list []*instance, order map[string]int) {
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && order[list[j].ID] < order[list[j-1].ID]; j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
}

func remove(list []*instance, in *instance) []*instance {
	for i, x := range list {
		if x == in {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// retireLocked takes an instance out of rotation; drained is closed once
// its requests have finished.
func (p *pool) retireLocked(in *instance) {
	in.stopping = true
	p.insts = remove(p.insts, in)
	in.dropConns()
	if in.inflight == 0 {
		close(in.drained)
		return
	}
	p.retiring = append(p.retiring, in)
}

// drain waits until the instance id has nothing in flight (or ctx ends).
func (p *pool) drain(ctx context.Context, id string) {
	p.mu.Lock()
	var in *instance
	for _, x := range p.retiring {
		if x.ID == id {
			in = x
		}
	}
	if x := p.findLocked(id); x != nil {
		// The provider stops what it no longer lists; take it out now.
		p.retireLocked(x)
		in = x
	}
	p.mu.Unlock()
	if in == nil {
		return
	}
	select {
	case <-in.drained:
	case <-ctx.Done():
	}
	in.dropConns()
}

func (in *instance) dropConns() {
	if in.closeIdle != nil {
		in.closeIdle()
	}
}

// update switches the pool to a new revision: new requests go to its
// instances once one is ready (the old ones serve until then).
func (p *pool) update(fn function.Function, rev uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rev == p.rev {
		return
	}
	p.fn, p.rev = fn, rev
	p.spec.Store(&fn)
	p.failed, p.starting = nil, 0
}

// close fails queued requests; the provider stops the instances.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, w := range p.waiters {
		w.ch <- grant{err: ErrGone}
	}
	p.loadLocked(-len(p.waiters))
	p.waiters = nil
	for _, in := range append([]*instance(nil), p.insts...) {
		p.retireLocked(in)
	}
	p.m.setInstances(0)
}

// record counts one answered request.
func (p *pool) record(status int, took time.Duration) {
	p.invocations.Add(1)
	if status >= 500 {
		p.failures.Add(1)
	}
	p.m.observe(status, took)
}

// Status is a function's live state on this gateway.
type Status struct {
	// Recent sums the function's last SummaryWindow on this gateway.
	Recent         series.Summary `json:"recent"`
	ReadyInstances int            `json:"readyInstances"`
	TotalInstances int            `json:"totalInstances"`
	Invocations    int64          `json:"invocations"`
	Failures       int64          `json:"failures"`
	ColdStarts     int64          `json:"coldStarts"`
	LastError      string         `json:"lastError,omitempty"`
	LastErrorAt    *time.Time     `json:"lastErrorAt,omitempty"`
}

// InstanceStatus describes one instance.
type InstanceStatus struct {
	ID       string    `json:"id"`
	Revision uint64    `json:"revision"`
	State    string    `json:"state"` // "ready" or "stopping"
	Addr     string    `json:"addr,omitempty"`
	InFlight int       `json:"inFlight"`
	Served   int64     `json:"served"`
	Started  time.Time `json:"started"`
	LastUsed time.Time `json:"lastUsed"`
}

func (p *pool) status() (Status, []InstanceStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{ReadyInstances: len(p.insts), TotalInstances: len(p.insts) + len(p.retiring) + p.starting,
		Invocations: p.invocations.Load(), Failures: p.failures.Load(), ColdStarts: p.coldStarts.Load(),
		Recent: p.g.metrics.recent.Summary(p.key, SummaryWindow, time.Now())}
	if le := p.lastErr.Load(); le != nil {
		at := le.At
		s.LastError, s.LastErrorAt = le.Msg, &at
	}
	list := make([]InstanceStatus, 0, len(p.insts)+len(p.retiring))
	for _, in := range p.insts {
		list = append(list, in.describe("ready"))
	}
	for _, in := range p.retiring {
		list = append(list, in.describe("stopping"))
	}
	return s, list
}

func (in *instance) describe(state string) InstanceStatus {
	return InstanceStatus{ID: in.ID, Revision: in.Revision, State: state, Addr: in.Addr,
		InFlight: in.inflight, Served: in.served, Started: in.Started, LastUsed: in.lastUsed}
}

// failureReason is the start failure's reason callers may be told.
func (p *pool) failureReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason
}
