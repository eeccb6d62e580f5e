package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/function"
	"nimbus/internal/store"
)

// LocalOptions configure a Local provider.
type LocalOptions struct {
	Driver driver.Driver
	// OpenPackage serves function packages to the driver.
	OpenPackage func(ctx context.Context, digest string) (io.ReadCloser, error)
	// SecretValue reads a secret for a replica being started.
	SecretValue func(ctx context.Context, namespace, name string) ([]byte, error)
	// Log receives each line a replica writes, and the provider's own lines
	// about replicas (stream "system"). It must not block.
	Log func(store.LogLine)
	// Watch is told of every change of a function's State.
	Watch Watcher
	// Drain is called before a replica is stopped; nil stops at once.
	Drain Drainer
	// StartTimeout bounds one start (default 60s); StopGrace is how long a
	// replica gets to exit after SIGTERM (default 10s); DrainTimeout bounds
	// the wait for its requests to finish (default 15m, the longest
	// function timeout).
	StartTimeout, StopGrace, DrainTimeout time.Duration
	Logger                                *slog.Logger
}

// Local keeps replicas as driver instances on this machine.
type Local struct {
	o      LocalOptions
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	fns map[string]*fnState
}

type fnState struct {
	ns, name  string
	target    Target
	reps      []*replica
	failures  int // consecutive failed starts or early exits
	retryAt   time.Time
	retry     *time.Timer
	failed    error
	lastErr   string
	lastErrAt time.Time
	removed   bool
}

type replicaState int

const (
	starting replicaState = iota
	ready
	stopping
)

type replica struct {
	rev    uint64
	state  replicaState
	inst   driver.Instance
	took   time.Duration
	cancel context.CancelFunc // of a start in progress
	cpu    time.Duration      // CPU time at cpuAt (see CPU)
	cpuAt  time.Time
}

// NewLocal returns a provider over o.Driver.
func NewLocal(o LocalOptions) *Local {
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = function.MaxTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Local{o: o, ctx: ctx, cancel: cancel, fns: map[string]*fnState{}}
}

// Name is the driver's.
func (l *Local) Name() string { return l.o.Driver.Name() }

// Ensure implements Provider.
func (l *Local) Ensure(t Target) {
	key := t.Function.Key()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return
	}
	f := l.fns[key]
	if f == nil {
		f = &fnState{ns: t.Function.Namespace, name: t.Function.Name}
		l.fns[key] = f
	}
	if t.Revision != f.target.Revision {
		// A new revision starts afresh: its own failures count, not the
		// last one's.
		f.failures, f.retryAt, f.failed = 0, time.Time{}, nil
		f.stopRetry()
	}
	changed := t.Revision != f.target.Revision || t.Replicas != f.target.Replicas
	f.target = t
	l.reconcileLocked(f)
	if changed {
		l.publishLocked(f)
	}
}

// Backoff is the wait before the next start after n consecutive failures:
// 100 ms doubling, at most 5 minutes.
func Backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// reconcileLocked starts what the target lacks and stops what it does not
// need.
func (l *Local) reconcileLocked(f *fnState) {
	if f.removed {
		return
	}
	rev, n := f.target.Revision, f.target.Replicas
	var cur, curReady []*replica
	for _, r := range f.reps {
		if r.rev == rev && r.state != stopping {
			cur = append(cur, r)
			if r.state == ready {
				curReady = append(curReady, r)
			}
		}
	}
	if missing := n - len(cur); missing > 0 && !time.Now().Before(f.retryAt) {
		for range missing {
			l.startLocked(f)
		}
	}
	if surplus := len(cur) - n; surplus > 0 {
		// Starts in progress go first, then the newest ready replicas.
		slices.SortStableFunc(cur, func(a, b *replica) int {
			if a.state != b.state || a.state == starting {
				return int(a.state) - int(b.state)
			}
			return b.inst.Started().Compare(a.inst.Started())
		})
		for _, r := range cur[:surplus] {
			l.stopLocked(f, r)
		}
	}
	// Older revisions stay until the target's replicas are all ready, or
	// none are wanted.
	if len(curReady) >= n {
		for _, r := range f.reps {
			if r.rev != rev && r.state != stopping {
				l.stopLocked(f, r)
			}
		}
	}
}

func (f *fnState) stopRetry() {
	if f.retry != nil {
		f.retry.Stop()
		f.retry = nil
	}
}

func (l *Local) startLocked(f *fnState) {
	ctx, cancel := context.WithTimeout(l.ctx, l.o.StartTimeout)
	r := &replica{rev: f.target.Revision, state: starting, cancel: cancel}
	f.reps = append(f.reps, r)
	fn, rev := f.target.Function, f.target.Revision
	l.wg.Go(func() {
		defer cancel()
		began := time.Now()
		spec, err := l.driverSpec(ctx, fn, rev)
		var inst driver.Instance
		if err == nil {
			inst, err = l.o.Driver.Start(ctx, spec)
		}
		l.started(f, r, inst, time.Since(began), err)
	})
}

// started records the end of a start.
func (l *Local) started(f *fnState, r *replica, inst driver.Instance, took time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		f.reps = slices.DeleteFunc(f.reps, func(x *replica) bool { return x == r })
		if r.state == stopping || f.removed || l.ctx.Err() != nil {
			return // abandoned on purpose
		}
		msg := err.Error()
		if !errors.Is(err, driver.ErrStartFailed) {
			msg = fmt.Sprintf("%v: %v", driver.ErrStartFailed, err)
		}
		l.failLocked(f, msg)
		l.systemLog(f.target.Function, "", msg)
		if f.target.Revision == r.rev {
			f.failed = err
		}
		l.reconcileLocked(f)
		l.publishLocked(f)
		return
	}
	r.inst, r.took = inst, took
	if r.state == stopping || f.removed || l.ctx.Err() != nil {
		l.wg.Go(func() { l.stopNow(inst) })
		f.reps = slices.DeleteFunc(f.reps, func(x *replica) bool { return x == r })
		return
	}
	r.state = ready
	if r.rev == f.target.Revision {
		f.failures, f.failed = 0, nil
	}
	l.systemLog(f.target.Function, inst.ID(), fmt.Sprintf("instance ready in %s", took.Round(10*time.Microsecond)))
	l.wg.Go(func() { l.watch(f, r) })
	l.reconcileLocked(f)
	l.publishLocked(f)
}

// failLocked counts a failure and schedules the next try after Backoff.
func (l *Local) failLocked(f *fnState, msg string) {
	f.failures++
	f.lastErr, f.lastErrAt = msg, time.Now()
	wait := Backoff(f.failures)
	f.retryAt = time.Now().Add(wait)
	f.stopRetry()
	f.retry = time.AfterFunc(wait, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.fns[function.Key(f.ns, f.name)] == f && l.ctx.Err() == nil {
			l.reconcileLocked(f)
			l.publishLocked(f)
		}
	})
}

// watch notices a replica that exits on its own and replaces it.
func (l *Local) watch(f *fnState, r *replica) {
	select {
	case <-r.inst.Done():
	case <-l.ctx.Done():
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.state == stopping {
		return
	}
	f.reps = slices.DeleteFunc(f.reps, func(x *replica) bool { return x == r })
	msg := "instance exited"
	if err := r.inst.Err(); err != nil {
		msg = err.Error()
	}
	l.systemLog(f.target.Function, r.inst.ID(), msg)
	if time.Since(r.inst.Started()) < 10*time.Second {
		l.failLocked(f, msg) // a crash loop backs off
	} else {
		f.lastErr, f.lastErrAt = msg, time.Now()
	}
	l.reconcileLocked(f)
	l.publishLocked(f)
}

// stopLocked takes a replica out of the ready list; it is drained, then
// stopped, in the background.
func (l *Local) stopLocked(f *fnState, r *replica) {
	prev := r.state
	r.state = stopping
	if prev == starting {
		r.cancel() // its start ends with an error, or is stopped on arrival
		return
	}
	fn := f.target.Function
	l.wg.Go(func() {
		if l.o.Drain != nil {
			ctx, cancel := context.WithTimeout(l.ctx, l.o.DrainTimeout)
			l.o.Drain(ctx, fn.Namespace, fn.Name, r.inst.ID())
			cancel()
		}
		l.stopNow(r.inst)
		l.mu.Lock()
		f.reps = slices.DeleteFunc(f.reps, func(x *replica) bool { return x == r })
		l.mu.Unlock()
	})
}

func (l *Local) stopNow(inst driver.Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), l.o.StopGrace)
	defer cancel()
	inst.Stop(ctx)
}

func (l *Local) stateLocked(f *fnState) State {
	s := State{Revision: f.target.Revision, Desired: f.target.Replicas, Failed: f.failed,
		LastError: f.lastErr, LastErrorAt: f.lastErrAt}
	if time.Now().Before(f.retryAt) {
		s.RetryAt = f.retryAt
	}
	var old []Endpoint
	for _, r := range f.reps {
		switch {
		case r.state == starting && r.rev == f.target.Revision:
			s.Starting++
		case r.state == ready:
			e := Endpoint{ID: r.inst.ID(), Revision: r.rev, Addr: r.inst.Addr(), Transport: r.inst.Transport(),
				Started: r.inst.Started(), StartTook: r.took}
			if r.rev == f.target.Revision {
				s.Ready = append(s.Ready, e)
			} else {
				old = append(old, e)
			}
		}
	}
	s.Ready = append(s.Ready, old...)
	if s.Failed != nil && s.ReadyOf(f.target.Revision) > 0 {
		s.Failed = nil
	}
	return s
}

func (l *Local) publishLocked(f *fnState) {
	if l.o.Watch != nil && !f.removed {
		st := l.stateLocked(f)
		st.Seq = NextSeq()
		l.o.Watch(f.ns, f.name, st)
	}
}

// CPU implements CPUReporter: each ready replica's CPU time since its last
// reading, over the time between them.
func (l *Local) CPU(ctx context.Context, namespace, name string) (float64, bool) {
	l.mu.Lock()
	var reps []*replica
	if f := l.fns[function.Key(namespace, name)]; f != nil {
		for _, r := range f.reps {
			if r.state == ready {
				reps = append(reps, r)
			}
		}
	}
	l.mu.Unlock()
	total, measured := 0.0, false
	for _, r := range reps {
		m, ok := r.inst.(driver.CPUMeter)
		if !ok {
			continue
		}
		used, err := m.CPUTime(ctx)
		if err != nil {
			continue
		}
		now := time.Now()
		l.mu.Lock()
		if !r.cpuAt.IsZero() && now.After(r.cpuAt) {
			total += (used - r.cpu).Seconds() / now.Sub(r.cpuAt).Seconds() * 1000
		}
		r.cpu, r.cpuAt = used, now
		l.mu.Unlock()
		measured = true
	}
	return total, measured
}

// State implements Provider.
func (l *Local) State(namespace, name string) (State, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fns[function.Key(namespace, name)]
	if f == nil {
		return State{}, false
	}
	return l.stateLocked(f), true
}

// Remove implements Provider: every replica stops now (the gateway has
// failed what was queued), then the driver forgets the function's files.
func (l *Local) Remove(ctx context.Context, namespace, name string) {
	key := function.Key(namespace, name)
	l.mu.Lock()
	f := l.fns[key]
	delete(l.fns, key)
	var insts []driver.Instance
	if f != nil {
		f.removed = true
		f.stopRetry()
		if l.o.Watch != nil { // nothing of it is ready any more
			l.o.Watch(namespace, name, State{Revision: f.target.Revision, Seq: NextSeq()})
		}
		for _, r := range f.reps {
			if r.state == starting {
				r.cancel()
			} else if r.inst != nil {
				insts = append(insts, r.inst)
			}
			r.state = stopping
		}
	}
	l.mu.Unlock()
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Go(func() { in.Stop(ctx) })
	}
	wg.Wait()
	if fg, ok := l.o.Driver.(driver.Forgetter); ok {
		if err := fg.Forget(namespace, name); err != nil {
			l.o.Logger.Warn("a deleted function's files were not all removed", "function", key, "err", err)
		}
	}
}

// Close implements Provider.
func (l *Local) Close(ctx context.Context) {
	l.mu.Lock()
	keys := make([]*fnState, 0, len(l.fns))
	for _, f := range l.fns {
		keys = append(keys, f)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range keys {
		wg.Go(func() { l.Remove(ctx, f.ns, f.name) })
	}
	wg.Wait()
	l.cancel()
	l.wg.Wait()
}

func (l *Local) driverSpec(ctx context.Context, fn function.Function, rev uint64) (driver.Spec, error) {
	spec := driver.Spec{Function: fn, Revision: rev, OpenPackage: l.o.OpenPackage,
		Log: func(instance, stream, text string) { l.log(fn, instance, stream, text) }}
	if len(fn.Secrets) > 0 {
		if l.o.SecretValue == nil {
			return spec, fmt.Errorf("%w: secrets are not available", driver.ErrStartFailed)
		}
		spec.Secrets = make(map[string][]byte, len(fn.Secrets))
		for _, name := range fn.Secrets {
			v, err := l.o.SecretValue(ctx, fn.Namespace, name)
			if err != nil {
				return spec, fmt.Errorf("%w: secret %q: %w", driver.ErrStartFailed, name, err)
			}
			spec.Secrets[name] = v
		}
	}
	return spec, nil
}

func (l *Local) log(fn function.Function, instance, stream, text string) {
	if l.o.Log != nil {
		l.o.Log(store.LogLine{Time: time.Now(), Namespace: fn.Namespace, Function: fn.Name,
			Instance: instance, Stream: stream, Text: text})
	}
}

func (l *Local) systemLog(fn function.Function, instance, text string) {
	l.log(fn, instance, "system", text)
	l.o.Logger.Debug(text, "function", fn.Key(), "instance", instance)
}
