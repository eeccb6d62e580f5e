package scaler

import (
	"context"
	"strings"
	"testing"
	"time"

	"nimbus/internal/autoscaler"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/store"
)

// gatewayUnderTest is one scaler of a cluster with its own fake provider
// and load.
type gatewayUnderTest struct {
	s    *Scaler
	p    *fakeProvider
	load map[string]autoscaler.Sample
}

func join(t *testing.T, hub *Hub, id string, fn function.Function, now func() time.Time) *gatewayUnderTest {
	return joinWith(t, hub, id, fn, now, func(p *fakeProvider) provider.Provider { return p })
}

// joinWith is join with the fake provider wrapped (e.g. as one whose
// replicas are shared).
func joinWith(t *testing.T, hub *Hub, id string, fn function.Function, now func() time.Time, wrap func(*fakeProvider) provider.Provider) *gatewayUnderTest {
	g := &gatewayUnderTest{p: &fakeProvider{ready: 100}, load: map[string]autoscaler.Sample{}}
	g.s = New(Options{Providers: map[string]provider.Provider{"process": wrap(g.p)}, Cluster: hub.Join(id),
		Load: func(time.Time) map[string]autoscaler.Sample { return g.load }, Now: now})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := g.s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.s.Apply(store.Record{Function: fn, Revision: 1}); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestOneDecisionAcrossGateways: two gateways on one cluster publish their
// load; one decides, on the sum; both report the same count and each runs
// its share; when the decider stops, the other takes over within the
// lease's TTL and a tick; a floor set through either holds on both.
func TestOneDecisionAcrossGateways(t *testing.T) {
	clock := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	hub := NewHub(now)
	fn := function.Function{Name: "f", Command: []string{"x"}, Package: "sha256:" + strings.Repeat("a", 64),
		Scale: function.Scale{MaxConcurrency: 10, Max: 20}}.WithDefaults()
	a, b := join(t, hub, "gw-a", fn, now), join(t, hub, "gw-b", fn, now)
	// 21 requests in flight at each gateway: 42 at target 7 → 6 replicas.
	a.load["default/f"] = autoscaler.Sample{Concurrency: 21}
	b.load["default/f"] = autoscaler.Sample{Concurrency: 21}
	step := func(gs ...*gatewayUnderTest) {
		for _, g := range gs {
			g.s.Step(context.Background(), clock)
		}
		clock = clock.Add(time.Second)
	}
	for range 10 {
		step(a, b)
	}
	if a.s.Leader() == b.s.Leader() {
		t.Fatalf("leaders: a %v, b %v; want exactly one", a.s.Leader(), b.s.Leader())
	}
	sa, _ := a.s.Status("default", "f")
	sb, _ := b.s.Status("default", "f")
	if sa.Desired != 6 || sb.Desired != 6 {
		t.Fatalf("desired: a %d, b %d; want 6 on both (the sum of their load)", sa.Desired, sb.Desired)
	}
	if sa.Local+sb.Local != 6 || sa.Local != 3 || sa.Gateways != 2 {
		t.Fatalf("shares: a %+v, b %+v; want 3 each", sa, sb)
	}
	if sa.DecidedBy != "gw-a" || sb.DecidedBy != "gw-a" {
		t.Fatalf("decided by %q and %q, want gw-a (the first to take the lease)", sa.DecidedBy, sb.DecidedBy)
	}

	// a stops (its process died): b takes over within the lease's TTL and
	// a tick, and alone carries the count.
	dead := clock
	for !b.s.Leader() {
		step(b)
		if clock.Sub(dead) > LeaseTTL+2*time.Second {
			t.Fatalf("b did not take over within %s", clock.Sub(dead))
		}
	}
	t.Logf("b decides %s after a's last tick", clock.Sub(dead))
	b.load["default/f"] = autoscaler.Sample{Concurrency: 42}
	for range 5 {
		step(b)
	}
	if sb, _ = b.s.Status("default", "f"); sb.Desired != 6 || sb.Local != 6 || sb.Gateways != 1 {
		t.Fatalf("b alone: %+v, want all 6 replicas here", sb)
	}

	// A floor set through a (not deciding) holds on both.
	if n, ok := a.s.Scale("default", "f", 9); !ok || n != 9 {
		t.Fatalf("scale through a: %d %v", n, ok)
	}
	step(b)
	sa, _ = a.s.Status("default", "f")
	sb, _ = b.s.Status("default", "f")
	if sa.Desired != 9 || sb.Desired != 9 || sb.Floor != 9 {
		t.Fatalf("after a floor of 9: a %+v, b %+v", sa, sb)
	}
	if got := b.p.last().Replicas; got != 9 {
		t.Fatalf("b's provider keeps %d, want 9", got)
	}
}

func TestShare(t *testing.T) {
	members := []string{"a", "b", "c"}
	for _, c := range []struct {
		n    int
		self string
		want int
	}{{0, "a", 0}, {1, "a", 1}, {1, "b", 0}, {5, "a", 2}, {5, "b", 2}, {5, "c", 1}, {6, "c", 2}} {
		if got := share(c.n, c.self, members); got != c.want {
			t.Errorf("share(%d, %s): %d, want %d", c.n, c.self, got, c.want)
		}
	}
	if got := share(4, "a", nil); got != 4 {
		t.Errorf("no members: %d", got)
	}
}

// TestStaleDecisionsIgnored: a decision from a decider that lost its lease
// (a lower term), or older than the one held, does not replace it.
func TestStaleDecisionsIgnored(t *testing.T) {
	s, _, _ := setup(t, nil)
	now := time.Now()
	s.change(Change{Key: "default/f", Decision: &Decision{Desired: 3, DecidedAt: now, Term: 10, By: "new"}})
	s.change(Change{Key: "default/f", Decision: &Decision{Desired: 1, DecidedAt: now.Add(time.Second), Term: 9, By: "old"}})
	if st, _ := s.Status("default", "f"); st.Desired != 3 || st.DecidedBy != "new" {
		t.Fatalf("a lower term's decision replaced the held one: %+v", st)
	}
	s.change(Change{Key: "default/f", Decision: &Decision{Desired: 2, DecidedAt: now.Add(-time.Second), Term: 10, By: "echo"}})
	if st, _ := s.Status("default", "f"); st.Desired != 3 {
		t.Fatalf("an older decision's late echo replaced the held one: %+v", st)
	}
	s.change(Change{Key: "default/f", Decision: &Decision{Desired: 4, DecidedAt: now.Add(time.Second), Term: 11, By: "new"}})
	if st, _ := s.Status("default", "f"); st.Desired != 4 {
		t.Fatalf("a newer decision was not taken: %+v", st)
	}
}

// TestActivationStartsWhatTheQueueNeeds: a burst at zero starts as many
// replicas as it needs at once, not one per tick; an activation that
// comes before the scaler has the function is kept for it.
func TestActivationStartsWhatTheQueueNeeds(t *testing.T) {
	s, p, _ := setup(t, func(f *function.Function) { f.Scale.MaxConcurrency, f.Scale.Max = 10, 20 })
	s.Activate(p.last().Function, 30) // 30 waiting at target 7 → 5
	if got := p.last().Replicas; got != 5 {
		t.Fatalf("a burst of 30 at zero: %d replicas at once, want 5", got)
	}

	s2, p2, _ := setup(t, nil)
	fn := p2.last().Function
	s2.Remove("default", "f")
	s2.Activate(fn, 1) // the gateway has it, the scaler not yet
	if err := s2.Apply(store.Record{Function: fn, Revision: 2}); err != nil {
		t.Fatal(err)
	}
	if got := p2.last().Replicas; got != 1 {
		t.Fatalf("an activation before Apply was lost: %d replicas", got)
	}
}

// sharedProvider is a fakeProvider whose replicas are every gateway's (a
// Deployment).
type sharedProvider struct{ *fakeProvider }

func (sharedProvider) SharesReplicas() bool { return true }

// TestSharedReplicas: with a provider whose replicas all gateways share,
// each gateway asks for the whole count, not a share, and only the
// decider's may remove replicas; the others' targets grow only.
func TestSharedReplicas(t *testing.T) {
	clock := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	hub := NewHub(now)
	fn := function.Function{Name: "f", Command: []string{"x"}, Package: "sha256:" + strings.Repeat("a", 64),
		Scale: function.Scale{MaxConcurrency: 10, Max: 20}}.WithDefaults()
	joinShared := func(id string) *gatewayUnderTest {
		return joinWith(t, hub, id, fn, now, func(p *fakeProvider) provider.Provider { return sharedProvider{p} })
	}
	a, b := joinShared("gw-a"), joinShared("gw-b")
	a.load["default/f"] = autoscaler.Sample{Concurrency: 21}
	b.load["default/f"] = autoscaler.Sample{Concurrency: 21}
	for range 10 {
		a.s.Step(context.Background(), clock)
		b.s.Step(context.Background(), clock)
		clock = clock.Add(time.Second)
	}
	decider, other := a, b
	if b.s.Leader() {
		decider, other = b, a
	}
	if !decider.s.Leader() || other.s.Leader() {
		t.Fatal("want exactly one decider")
	}
	d, o := decider.p.last(), other.p.last()
	if d.Replicas != 6 || d.GrowOnly || o.Replicas != 6 || !o.GrowOnly {
		t.Fatalf("targets: decider %+v, other %+v; want 6 on both, the other's grow-only", d, o)
	}
	if s, _ := decider.s.Status("default", "f"); s.Desired != 6 {
		t.Fatalf("desired %d, want 6 (each gateway's ready replicas are the same ones, counted once)", s.Desired)
	}
}
