package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/function"
)

// pool is the activator of one function: it holds the function's ready
// instances, hands each request the least-loaded one with a free slot, queues
// requests (bounded) while none has one, and starts instances on demand. All
// fields under mu; the counters are atomic.
type pool struct {
	g   *Gateway
	key string

	mu       sync.Mutex
	fn       function.Function
	rev      uint64
	drv      driver.Driver
	insts    []*instance // ready, serving the current revision
	retiring []*instance // old revision or idle: finishing in-flight work
	starting int
	waiters  []*waiter
	closed   bool

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

// instance is a ready driver instance with its load, guarded by pool.mu.
type instance struct {
	driver.Instance
	rev      uint64
	proxy    proxyHandler
	inflight int
	served   int64
	lastUsed time.Time
	stopping bool
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

func newPool(g *Gateway, fn function.Function, rev uint64, drv driver.Driver) *pool {
	p := &pool{g: g, key: fn.Key(), fn: fn, rev: rev, drv: drv, m: g.metrics.forFunction(fn)}
	p.spec.Store(&fn)
	return p
}

func (p *pool) setError(msg string) {
	p.lastErr.Store(&lastError{At: time.Now(), Msg: msg})
}

// acquire returns an instance with a free slot, waiting (bounded by ctx) for
// one to start or free up. cold reports that the request had to wait for a start.
func (p *pool) acquire(ctx context.Context) (inst *instance, cold bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrGone
	}
	if inst := p.pickLocked(); inst != nil {
		inst.inflight++
		p.mu.Unlock()
		return inst, false, nil
	}
	if len(p.waiters) >= p.g.opts.MaxPending {
		p.mu.Unlock()
		return nil, false, ErrOverloaded
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	cold = len(p.insts) == 0
	p.scaleUpLocked()
	p.mu.Unlock()

	select {
	case g := <-w.ch:
		return g.inst, cold, g.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, cold, ErrNoInstance
		}
	}
	p.mu.Unlock()
	// Granted while we gave up: give the slot back.
	if g := <-w.ch; g.inst != nil {
		p.release(g.inst)
	}
	return nil, cold, ErrNoInstance
}

// pickLocked returns the ready instance with the fewest requests in flight that
// has a free slot, or nil.
func (p *pool) pickLocked() *instance {
	var best *instance
	limit := p.fn.Scale.MaxConcurrency
	for _, in := range p.insts {
		if in.inflight < limit && (best == nil || in.inflight < best.inflight) {
			best = in
		}
	}
	return best
}

// release gives a slot back and hands it to the oldest waiter.
func (p *pool) release(in *instance) {
	p.mu.Lock()
	in.inflight--
	in.served++
	in.lastUsed = time.Now()
	if in.stopping {
		if in.inflight == 0 {
			p.dropLocked(in)
			p.mu.Unlock()
			p.stop(in)
			return
		}
		p.mu.Unlock()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		in.inflight++
		w.ch <- grant{inst: in}
	}
	p.mu.Unlock()
}

// scaleUpLocked starts instances while the queued requests exceed what ready
// and starting instances will absorb, up to scale.max. Concurrent cold
// requests therefore share one start.
func (p *pool) scaleUpLocked() {
	if p.closed {
		return
	}
	c := p.fn.Scale.MaxConcurrency
	for len(p.waiters) > p.starting*c && len(p.insts)+p.starting < p.fn.Scale.Max {
		p.starting++
		go p.start(true)
	}
}

// ensureMinLocked starts instances until scale.min are ready or starting.
func (p *pool) ensureMinLocked() {
	for !p.closed && len(p.insts)+p.starting < p.fn.Scale.Min {
		p.starting++
		go p.start(false)
	}
}

// start brings up one instance of the current revision.
func (p *pool) start(demand bool) {
	p.mu.Lock()
	fn, rev, drv := p.fn, p.rev, p.drv
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.g.ctx, p.g.opts.StartTimeout)
	defer cancel()
	began := time.Now()
	spec, err := p.g.driverSpec(ctx, fn, rev)
	var di driver.Instance
	if err == nil {
		di, err = drv.Start(ctx, spec)
	}
	took := time.Since(began)

	p.mu.Lock()
	p.starting--
	if err != nil {
		p.setError(err.Error())
		p.g.systemLog(fn, "", fmt.Sprintf("instance failed to start: %v", err))
		if len(p.insts) == 0 && p.starting == 0 {
			for _, w := range p.waiters {
				w.ch <- grant{err: ErrStartFailed}
			}
			p.waiters = nil
		}
		p.mu.Unlock()
		return
	}
	in := &instance{Instance: di, rev: rev, lastUsed: time.Now()}
	in.proxy = p.g.newProxy(in)
	if p.closed || rev != p.rev {
		in.stopping = true
		p.mu.Unlock()
		p.stop(in)
		p.mu.Lock()
		p.scaleUpLocked()
		p.mu.Unlock()
		return
	}
	p.insts = append(p.insts, in)
	p.m.setInstances(len(p.insts))
	if demand {
		p.coldStarts.Add(1)
		p.m.coldStarts.Inc()
		p.m.coldStartSeconds.Observe(took.Seconds())
	}
	for len(p.waiters) > 0 && in.inflight < fn.Scale.MaxConcurrency {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		in.inflight++
		w.ch <- grant{inst: in}
	}
	p.mu.Unlock()
	p.g.systemLog(fn, di.ID(), fmt.Sprintf("instance ready in %s", took.Round(10*time.Microsecond)))
	go p.watch(in)
}

// watch notices an instance that exits on its own and replaces it when
// something still needs it.
func (p *pool) watch(in *instance) {
	<-in.Done()
	p.mu.Lock()
	if in.stopping {
		p.mu.Unlock()
		return
	}
	in.stopping = true
	had := in.inflight > 0
	p.dropLocked(in)
	in.dropConns()
	msg := "instance exited"
	if err := in.Err(); err != nil {
		msg = err.Error()
	}
	p.setError(msg)
	fn := p.fn
	if had || len(p.waiters) > 0 {
		if len(p.insts)+p.starting < p.fn.Scale.Max && p.starting == 0 {
			p.starting++
			go p.start(len(p.waiters) > 0)
		}
	}
	p.ensureMinLocked()
	p.mu.Unlock()
	p.g.systemLog(fn, in.ID(), msg)
}

// dropLocked removes an instance from the pool's lists.
func (p *pool) dropLocked(in *instance) {
	p.insts = remove(p.insts, in)
	p.retiring = remove(p.retiring, in)
	p.m.setInstances(len(p.insts))
}

func remove(list []*instance, in *instance) []*instance {
	for i, x := range list {
		if x == in {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

func (p *pool) stop(in *instance) {
	ctx, cancel := context.WithTimeout(context.Background(), p.g.opts.StopGrace)
	defer cancel()
	in.Stop(ctx)
	in.dropConns()
}

func (in *instance) dropConns() {
	if in.closeIdle != nil {
		in.closeIdle()
	}
}

// retireLocked takes an instance out of rotation; it stops once idle.
func (p *pool) retireLocked(in *instance) {
	in.stopping = true
	p.insts = remove(p.insts, in)
	if in.inflight == 0 {
		p.retiring = remove(p.retiring, in)
		go p.stop(in)
		return
	}
	p.retiring = append(p.retiring, in)
}

// update switches the pool to a new revision: new requests go to new
// instances; old ones finish what they serve, then stop.
func (p *pool) update(fn function.Function, rev uint64, drv driver.Driver) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rev == p.rev {
		return
	}
	p.fn, p.rev, p.drv = fn, rev, drv
	p.spec.Store(&fn)
	for _, in := range append([]*instance(nil), p.insts...) {
		p.retireLocked(in)
	}
	p.m.setInstances(0)
	p.ensureMinLocked()
	p.scaleUpLocked()
}

// reapIdle stops instances above scale.min that served nothing for idleTimeout.
func (p *pool) reapIdle(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := time.Duration(p.fn.Scale.IdleTimeout)
	for _, in := range append([]*instance(nil), p.insts...) {
		if len(p.insts) <= p.fn.Scale.Min {
			return
		}
		if in.inflight == 0 && now.Sub(in.lastUsed) >= idle {
			p.retireLocked(in)
			p.g.systemLog(p.fn, in.ID(), fmt.Sprintf("instance stopped after %s idle", idle))
		}
	}
	p.m.setInstances(len(p.insts))
}

// close fails queued requests and stops every instance, waiting for them.
func (p *pool) close(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	for _, w := range p.waiters {
		w.ch <- grant{err: ErrGone}
	}
	p.waiters = nil
	all := append(append([]*instance(nil), p.insts...), p.retiring...)
	for _, in := range all {
		in.stopping = true
	}
	p.insts, p.retiring = nil, nil
	p.m.setInstances(0)
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range all {
		wg.Go(func() { in.Stop(ctx); in.dropConns() })
	}
	wg.Wait()
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
	ReadyInstances int        `json:"readyInstances"`
	TotalInstances int        `json:"totalInstances"`
	Invocations    int64      `json:"invocations"`
	Failures       int64      `json:"failures"`
	ColdStarts     int64      `json:"coldStarts"`
	LastError      string     `json:"lastError,omitempty"`
	LastErrorAt    *time.Time `json:"lastErrorAt,omitempty"`
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
		Invocations: p.invocations.Load(), Failures: p.failures.Load(), ColdStarts: p.coldStarts.Load()}
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
	return InstanceStatus{ID: in.ID(), Revision: in.rev, State: state, Addr: in.Addr(),
		InFlight: in.inflight, Served: in.served, Started: in.Started(), LastUsed: in.lastUsed}
}
