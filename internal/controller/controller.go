// Package controller keeps the data plane in step with the store: it watches
// function specs and applies every create, update and delete to its target
// (the gateway). It is level-triggered: on start it applies the whole current
// state, so a restart needs no redeploy; for each function it applies the
// latest state it has seen, and an apply that fails is retried with backoff
// until it succeeds or a newer state replaces it.
//
// Changes to different functions apply independently, on a pool of
// workers: a delete whose instances take long to stop delays nothing but
// later changes to the same function. One function's changes apply in
// order, one at a time.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

// Target is what the controller drives; the gateway implements it. Both
// methods must be idempotent: a failed Apply is made again.
type Target interface {
	Apply(rec store.Record) error
	Remove(namespace, name string)
}

// Watcher is the part of the store the controller reads.
type Watcher interface {
	Watch(ctx context.Context) (events <-chan store.Event, initial <-chan struct{}, err error)
}

// Controller watches a store and applies changes to a target.
type Controller struct {
	Store  Watcher
	Target Target
	Logger *slog.Logger
	// Workers is how many functions' changes apply at once. Default 8.
	Workers int
	// Backoff is the wait before retry number attempt (from 1) of a failed
	// apply. Default RetryBackoff.
	Backoff func(attempt int) time.Duration

	mu      sync.Mutex
	cond    *sync.Cond // signals queue and shutdown, under mu
	items   map[string]*item
	queue   []string // keys ready to apply, oldest first
	pending int      // keys queued or being applied
	stopped bool
}

// item is the latest state seen of one function and where it stands.
type item struct {
	ev      store.Event
	queued  bool // in queue
	busy    bool // a worker is applying it
	dirty   bool // a newer state arrived while busy
	attempt int  // failed applies of the current state
	retry   *time.Timer
}

// RetryBackoff doubles from 100ms up to 5 minutes.
func RetryBackoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < attempt && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// Run applies the current functions, reports ready by closing synced (once
// each has been applied or has failed once), then applies changes until ctx
// ends. If the watch breaks it is re-established.
func (c *Controller) Run(ctx context.Context, synced chan<- struct{}) error {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Backoff == nil {
		c.Backoff = RetryBackoff
	}
	c.items = map[string]*item{}
	c.cond = sync.NewCond(&c.mu)
	var wg sync.WaitGroup
	for range c.Workers {
		wg.Go(c.work)
	}
	defer func() {
		c.mu.Lock()
		c.stopped = true
		c.cond.Broadcast()
		for _, it := range c.items {
			if it.retry != nil {
				it.retry.Stop()
			}
		}
		c.mu.Unlock()
		wg.Wait()
	}()
	signalled := false
	for {
		err := c.watch(ctx, func() {
			if !signalled {
				signalled = true
				close(synced)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		c.Logger.Warn("function watch ended; restarting it", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (c *Controller) watch(ctx context.Context, onSynced func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, initial, err := c.Store.Watch(ctx)
	if err != nil {
		return fmt.Errorf("watch functions: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-initial:
			initial = nil
			// Everything sent before the marker is queued; wait until each
			// has been applied once (a failure is retried later, and does
			// not hold up the start of everything else).
			for drained := false; !drained; {
				select {
				case ev, ok := <-events:
					if !ok {
						return fmt.Errorf("watch closed")
					}
					c.enqueue(ev)
				default:
					drained = true
				}
			}
			if !c.waitIdle(ctx) {
				return ctx.Err()
			}
			onSynced()
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("watch closed")
			}
			c.enqueue(ev)
		}
	}
}

// enqueue records ev as its function's latest state and queues the function.
func (c *Controller) enqueue(ev store.Event) {
	fn := ev.Record.Function
	key := function.Key(fn.Namespace, fn.Name)
	if ev.Err != nil {
		// Keep serving what was applied last: an entry that cannot be read
		// is no reason to stop a function. Say so loudly.
		c.Logger.Error("a function's stored spec cannot be read; the data plane keeps its last applied state",
			"function", key, "revision", ev.Record.Revision, "err", ev.Err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.items[key]
	if it == nil {
		it = &item{}
		c.items[key] = it
	}
	it.ev, it.attempt = ev, 0
	if it.retry != nil {
		it.retry.Stop()
		it.retry = nil
	}
	c.queueLocked(key, it)
}

func (c *Controller) queueLocked(key string, it *item) {
	switch {
	case it.busy:
		it.dirty = true
	case !it.queued:
		it.queued = true
		c.pending++
		c.queue = append(c.queue, key)
		c.cond.Signal()
	}
}

// waitIdle waits until nothing is queued or being applied (retries waiting
// for their backoff do not count).
func (c *Controller) waitIdle(ctx context.Context) bool {
	for {
		c.mu.Lock()
		idle := c.pending == 0
		c.mu.Unlock()
		if idle {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (c *Controller) work() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queue) == 0 && !c.stopped {
			c.cond.Wait()
		}
		if c.stopped {
			return
		}
		key := c.queue[0]
		c.queue = c.queue[1:]
		it := c.items[key]
		it.queued, it.busy = false, true
		ev := it.ev
		c.mu.Unlock()

		err := c.apply(ev)

		c.mu.Lock()
		it.busy = false
		c.pending--
		switch {
		case it.dirty:
			it.dirty = false
			c.queueLocked(key, it)
		case err != nil:
			it.attempt++
			wait := c.Backoff(it.attempt)
			c.Logger.Error("applying a function failed; retrying", "function", key, "revision", ev.Record.Revision,
				"attempt", it.attempt, "retry_in", wait, "err", err)
			var t *time.Timer
			t = time.AfterFunc(wait, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if it.retry != t || c.stopped {
					return // replaced by a newer state, or shutting down
				}
				it.retry = nil
				c.queueLocked(key, it)
			})
			it.retry = t
		case ev.Type == store.EventDelete:
			delete(c.items, key)
		}
	}
}

func (c *Controller) apply(ev store.Event) error {
	fn := ev.Record.Function
	switch ev.Type {
	case store.EventPut:
		return c.Target.Apply(ev.Record)
	case store.EventDelete:
		c.Target.Remove(fn.Namespace, fn.Name)
	}
	return nil
}

// Targets applies every change to each of several targets, in order.
type Targets []Target

// Apply applies rec to every target; the first error is returned, after all ran.
func (ts Targets) Apply(rec store.Record) error {
	var first error
	for _, t := range ts {
		if err := t.Apply(rec); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Remove removes a function from every target.
func (ts Targets) Remove(namespace, name string) {
	for _, t := range ts {
		t.Remove(namespace, name)
	}
}
