// Package clustertest is the conformance suite of scaler.Cluster: loads
// reach the other gateways, records reach every watcher, and one gateway
// at a time holds the decider's lease, which another takes over once its
// holder stops renewing it. It runs on real time (the lease's TTL).
package clustertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"nimbus/internal/autoscaler"
	"nimbus/internal/scaler"
)

// Run runs the suite; join returns gateway id's membership of one cluster
// (the same one on every call within a test).
func Run(t *testing.T, newCluster func(t *testing.T) func(id string) scaler.Cluster) {
	t.Run("LoadsReachTheOthers", func(t *testing.T) { testLoads(t, newCluster(t)) })
	t.Run("RecordsReachEveryWatcher", func(t *testing.T) { testRecords(t, newCluster(t)) })
	t.Run("OneLeaseHolder", func(t *testing.T) { testLease(t, newCluster(t)) })
}

func testLoads(t *testing.T, join func(string) scaler.Cluster) {
	a, b := join("gw-a"), join("gw-b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string][]scaler.Load{}
	for _, c := range []scaler.Cluster{a, b} {
		if err := c.SubscribeLoad(ctx, func(l scaler.Load) {
			mu.Lock()
			got[c.ID()] = append(got[c.ID()], l)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	l := scaler.Load{Gateway: "gw-a", At: time.Now().UTC(), Samples: map[string]autoscaler.Sample{"default/f": {Concurrency: 2.5, Requests: 7}},
		Ready: map[string]int{"default/f": 2}}
	if err := a.PublishLoad(ctx, l); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to hear a's load", func() bool { mu.Lock(); defer mu.Unlock(); return len(got["gw-b"]) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if r := got["gw-b"][0]; r.Samples["default/f"] != l.Samples["default/f"] || r.Ready["default/f"] != 2 || r.Gateway != "gw-a" {
		t.Fatalf("b heard %+v", r)
	}
	if len(got["gw-a"]) != 0 {
		t.Fatalf("a heard its own load: %+v", got["gw-a"])
	}
}

type changes struct {
	mu   sync.Mutex
	list []scaler.Change
}

func (c *changes) add(ch scaler.Change) { c.mu.Lock(); c.list = append(c.list, ch); c.mu.Unlock() }

func (c *changes) find(pred func(scaler.Change) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.list {
		if pred(ch) {
			return true
		}
	}
	return false
}

func testRecords(t *testing.T, join func(string) scaler.Cluster) {
	a, b := join("gw-a"), join("gw-b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := scaler.Decision{Desired: 3, Panic: true, Reason: "why", DecidedAt: time.Now().UTC().Truncate(time.Millisecond), By: "gw-a"}
	if err := a.PutDecision(ctx, "default/f", d); err != nil {
		t.Fatal(err)
	}
	// A watcher that starts later gets what is held before Watch returns.
	var late changes
	if err := b.Watch(ctx, late.add); err != nil {
		t.Fatal(err)
	}
	if !late.find(func(c scaler.Change) bool { return c.Key == "default/f" && c.Decision != nil && *c.Decision == d }) {
		t.Fatalf("a held decision was not delivered before Watch returned: %+v", late.list)
	}
	if err := a.PutFloor(ctx, "default/f", 4); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the floor", func() bool {
		return late.find(func(c scaler.Change) bool { return c.Key == "default/f" && c.Floor != nil && *c.Floor == 4 })
	})
	if err := b.Delete(ctx, "default/f"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion", func() bool {
		return late.find(func(c scaler.Change) bool { return c.Key == "default/f" && c.Deleted })
	})
	// Deleting what is not there is not an error.
	if err := b.Delete(ctx, "default/nothing"); err != nil {
		t.Fatalf("delete of nothing: %v", err)
	}
}

func testLease(t *testing.T, join func(string) scaler.Cluster) {
	a, b := join("gw-a"), join("gw-b")
	ctx := context.Background()
	first, ok, err := a.Lead(ctx)
	if !ok || err != nil {
		t.Fatalf("a, first: %v %v", ok, err)
	}
	last := first
	// a renews every half second for two TTLs: b never holds it.
	end := time.Now().Add(2 * scaler.LeaseTTL)
	for time.Now().Before(end) {
		term, ok, err := a.Lead(ctx)
		if !ok || err != nil {
			t.Fatalf("a lost its lease while renewing: %v %v", ok, err)
		}
		if term < last {
			t.Fatalf("a's term went down: %d after %d", term, last)
		}
		last = term
		if _, ok, _ := b.Lead(ctx); ok {
			t.Fatal("b took a lease a renews")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// a stops: b holds it within the TTL and a second.
	stopped := time.Now()
	for {
		term, ok, err := b.Lead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if term <= last {
				t.Fatalf("b's term %d is not above a's last %d: a late write of a's would pass", term, last)
			}
			break
		}
		if time.Since(stopped) > scaler.LeaseTTL+time.Second {
			t.Fatalf("b did not take the lease within %s of a's last renewal", time.Since(stopped))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("b took over %s after a's last renewal", time.Since(stopped).Round(10*time.Millisecond))
	if _, ok, _ := a.Lead(ctx); ok {
		t.Fatal("a still leads after b took over")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
