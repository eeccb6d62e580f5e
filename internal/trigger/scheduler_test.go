package trigger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nimbus/internal/backbone"
	"nimbus/internal/function"
	"nimbus/internal/queue"
	"nimbus/internal/queue/natsqueue"
	"nimbus/internal/trigger"
	"nimbus/internal/trigger/nattrigger"
)

// clock is a settable time.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time                       { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)                      { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration)                  { c.ns.Add(int64(d)) }
func exists(string, string) (function.Function, bool) { return function.Function{}, true }

type rig struct {
	store *nattrigger.Store
	q     *natsqueue.Queue
	clk   *clock
	mu    sync.Mutex
	got   map[string]int // queued call ids → times seen
}

func newRig(t *testing.T) *rig {
	ctx := context.Background()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bb.Close)
	st, err := nattrigger.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	q, err := natsqueue.Open(ctx, bb.JS, natsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{store: st, q: q, clk: &clock{}, got: map[string]int{}}
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go q.Consume(cctx, "default", "target", 100, func(d queue.Delivery) {
		r.mu.Lock()
		r.got[d.Message().CallID]++
		r.mu.Unlock()
		d.Ack()
	})
	return r
}

// scheduler runs one scheduler (a gateway) until the returned stop.
func (r *rig) scheduler() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &trigger.Scheduler{Store: r.store, Queue: r.q, Spec: exists, Tick: 5 * time.Millisecond, Grace: 10 * time.Minute, Now: r.clk.now}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func (r *rig) fired() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// settle waits until the queue has delivered n distinct firings, then a
// little more, so that a duplicate would show.
func (r *rig) settle(t *testing.T, n int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(r.fired()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d firings, got %v", n, r.fired())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	return r.fired()
}

// TestEachTimeFiresOnce: two schedulers on one store and queue, a minute
// schedule stepped through five minutes: five firings, each exactly once,
// with the call id of its trigger and time.
func TestEachTimeFiresOnce(t *testing.T) {
	r := newRig(t)
	base := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	r.clk.set(base)
	tr := trigger.Trigger{Name: "tick", Namespace: "default", Schedule: "* * * * *", Function: "target", Body: "hi", Created: base}
	if _, err := r.store.Put(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	stopA, stopB := r.scheduler(), r.scheduler()
	defer stopA()
	defer stopB()
	for i := 1; i <= 5; i++ {
		r.clk.add(time.Minute)
		r.settle(t, i)
	}
	got := r.fired()
	if len(got) != 5 {
		t.Fatalf("want 5 firings, got %v", got)
	}
	for i := 1; i <= 5; i++ {
		id := trigger.CallID("default", "tick", base.Truncate(time.Minute).Add(time.Duration(i)*time.Minute))
		if got[id] != 1 {
			t.Fatalf("firing %s seen %d times (all: %v)", id, got[id], got)
		}
	}
}

// TestRestartPolicy: after downtime a trigger fires once, for the latest
// missed time, and never twice for a time fired before the restart; past the
// grace period it fires nothing until its next time.
func TestRestartPolicy(t *testing.T) {
	r := newRig(t)
	base := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	r.clk.set(base)
	tr := trigger.Trigger{Name: "tick", Namespace: "default", Schedule: "* * * * *", Function: "target", Created: base}
	if _, err := r.store.Put(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	stop := r.scheduler()
	r.clk.add(time.Minute) // 12:01:30: fires 12:01
	r.settle(t, 1)
	stop()

	// Down for 4 minutes: 12:02..12:05 missed; on restart only 12:05 fires.
	r.clk.add(4 * time.Minute)
	stop = r.scheduler()
	got := r.settle(t, 2)
	latest := trigger.CallID("default", "tick", time.Date(2026, 5, 1, 12, 5, 0, 0, time.UTC))
	if len(got) != 2 || got[latest] != 1 {
		t.Fatalf("after downtime want 12:01 and 12:05 only, got %v", got)
	}
	stop()
	// A restart with nothing new due fires nothing again.
	stop = r.scheduler()
	time.Sleep(100 * time.Millisecond)
	if len(r.fired()) != 2 {
		t.Fatalf("a restart re-fired: %v", r.fired())
	}
	stop()

	// An hourly schedule (the grace is 10 minutes).
	tr.Schedule = "0 * * * *" // hourly
	tr.Created = r.clk.now()
	r.store.Put(context.Background(), tr)
	r.clk.add(3*time.Hour - 4*time.Minute) // 15:01:30: 13:00, 14:00 and 15:00 missed; 15:00 is 90s old
	stop = r.scheduler()
	r.settle(t, 3)
	stop()
	if got := r.fired(); got[trigger.CallID("default", "tick", time.Date(2026, 5, 1, 15, 0, 0, 0, time.UTC))] != 1 || len(got) != 3 {
		t.Fatalf("hourly after 3h down: want only 15:00 added, got %v", got)
	}
	r.clk.add(2*time.Hour + 30*time.Minute) // 17:31:30: 16:00 and 17:00 missed, 17:00 is 31 min old: beyond grace
	stop = r.scheduler()
	defer stop()
	time.Sleep(150 * time.Millisecond)
	if len(r.fired()) != 3 {
		t.Fatalf("a miss older than the grace fired: %v", r.fired())
	}
	r.clk.add(30 * time.Minute) // 18:01:30: 18:00 fires as usual
	if got := r.settle(t, 4); got[trigger.CallID("default", "tick", time.Date(2026, 5, 1, 18, 0, 0, 0, time.UTC))] != 1 {
		t.Fatalf("18:00 did not fire: %v", got)
	}
}
