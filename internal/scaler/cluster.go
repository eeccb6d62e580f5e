package scaler

import (
	"context"
	"slices"
	"sync"
	"time"

	"nimbus/internal/autoscaler"
)

// Cluster is what the gateways of one nimbus share to scale as one: each
// publishes its load every tick, one of them (the holder of a lease)
// decides, and the decisions and the API's floors are records every
// gateway watches. A single nimbus is a cluster of one.
type Cluster interface {
	// ID names this gateway among the others.
	ID() string
	// PublishLoad sends this gateway's load of the last tick to the others.
	PublishLoad(ctx context.Context, l Load) error
	// SubscribeLoad calls fn with every other gateway's load as it comes,
	// until ctx ends. fn must not block.
	SubscribeLoad(ctx context.Context, fn func(Load)) error
	// Lead takes the decider's lease, or keeps it, and reports whether this
	// gateway holds it, with the lease's term: a number that grows with
	// every renewal and every new holder, so that a later holder's term is
	// above every earlier one's. A holder that stops calling Lead loses the
	// lease within LeaseTTL.
	Lead(ctx context.Context) (term uint64, ok bool, err error)
	// PutDecision and PutFloor write a function's records; Delete removes
	// both.
	PutDecision(ctx context.Context, key string, d Decision) error
	PutFloor(ctx context.Context, key string, replicas int) error
	Delete(ctx context.Context, key string) error
	// Watch calls fn with every record now held and every later change,
	// until ctx ends; it returns once the records held were delivered.
	// fn must not block.
	Watch(ctx context.Context, fn func(Change)) error
}

// LeaseTTL is how long a decider's lease outlives its last renewal: a
// dead decider is replaced within it and a tick.
const LeaseTTL = 3 * time.Second

// Load is one gateway's load in one tick, by function key: what its
// activator saw, the CPU its replicas used, and how many of them are
// ready.
type Load struct {
	Gateway string                       `json:"gateway"`
	At      time.Time                    `json:"at"`
	Samples map[string]autoscaler.Sample `json:"samples"`
	Ready   map[string]int               `json:"ready,omitempty"`
}

// Decision is the decider's record of a function's replicas.
type Decision struct {
	Desired   int       `json:"desired"`
	Panic     bool      `json:"panic,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decidedAt"`
	By        string    `json:"by"`
	// Term is the decider's lease term when it decided.
	Term uint64 `json:"term"`
}

// Change is a record as Watch delivers it: a decision, a floor, or the
// function's records deleted.
type Change struct {
	Key      string
	Decision *Decision
	Floor    *int
	Deleted  bool
}

// Hub is an in-memory Cluster for gateways in one process: a single nimbus
// in tests, or several scalers in a test of the cluster's logic.
type Hub struct {
	mu        sync.Mutex
	leader    string
	renewed   time.Time
	term      uint64
	decisions map[string]Decision
	floors    map[string]int
	loads     map[string]func(Load) // by subscriber id
	watchers  map[int]func(Change)
	next      int
	now       func() time.Time
}

// NewHub returns an empty hub; now is its clock (nil: time.Now).
func NewHub(now func() time.Time) *Hub {
	if now == nil {
		now = time.Now
	}
	return &Hub{decisions: map[string]Decision{}, floors: map[string]int{}, loads: map[string]func(Load){},
		watchers: map[int]func(Change){}, now: now}
}

// Join returns gateway id's view of the hub.
func (h *Hub) Join(id string) Cluster { return &hubMember{h: h, id: id} }

type hubMember struct {
	h  *Hub
	id string
}

func (m *hubMember) ID() string { return m.id }

func (m *hubMember) PublishLoad(_ context.Context, l Load) error {
	m.h.mu.Lock()
	var fns []func(Load)
	for id, fn := range m.h.loads {
		if id != m.id {
			fns = append(fns, fn)
		}
	}
	m.h.mu.Unlock()
	for _, fn := range fns {
		fn(l)
	}
	return nil
}

func (m *hubMember) SubscribeLoad(ctx context.Context, fn func(Load)) error {
	m.h.mu.Lock()
	m.h.loads[m.id] = fn
	m.h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		m.h.mu.Lock()
		delete(m.h.loads, m.id)
		m.h.mu.Unlock()
	})
	return nil
}

func (m *hubMember) Lead(context.Context) (uint64, bool, error) {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	now := m.h.now()
	if m.h.leader == m.id || m.h.leader == "" || now.Sub(m.h.renewed) > LeaseTTL {
		m.h.leader, m.h.renewed = m.id, now
		m.h.term++
		return m.h.term, true, nil
	}
	return 0, false, nil
}

func (m *hubMember) PutDecision(_ context.Context, key string, d Decision) error {
	return m.h.apply(Change{Key: key, Decision: &d})
}

func (m *hubMember) PutFloor(_ context.Context, key string, n int) error {
	return m.h.apply(Change{Key: key, Floor: &n})
}

func (m *hubMember) Delete(_ context.Context, key string) error {
	return m.h.apply(Change{Key: key, Deleted: true})
}

// apply records a change and tells every watcher of it.
func (h *Hub) apply(c Change) error {
	h.mu.Lock()
	switch {
	case c.Deleted:
		delete(h.decisions, c.Key)
		delete(h.floors, c.Key)
	case c.Decision != nil:
		h.decisions[c.Key] = *c.Decision
	case c.Floor != nil:
		h.floors[c.Key] = *c.Floor
	}
	fns := h.watcherList()
	h.mu.Unlock()
	for _, fn := range fns {
		fn(c)
	}
	return nil
}

func (m *hubMember) Watch(ctx context.Context, fn func(Change)) error {
	m.h.mu.Lock()
	id := m.h.next
	m.h.next++
	m.h.watchers[id] = fn
	var held []Change
	for k, d := range m.h.decisions {
		held = append(held, Change{Key: k, Decision: &d})
	}
	for k, n := range m.h.floors {
		held = append(held, Change{Key: k, Floor: &n})
	}
	m.h.mu.Unlock()
	for _, c := range held {
		fn(c)
	}
	context.AfterFunc(ctx, func() {
		m.h.mu.Lock()
		delete(m.h.watchers, id)
		m.h.mu.Unlock()
	})
	return nil
}

func (h *Hub) watcherList() []func(Change) {
	ids := make([]int, 0, len(h.watchers))
	for id := range h.watchers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]func(Change), 0, len(ids))
	for _, id := range ids {
		out = append(out, h.watchers[id])
	}
	return out
}

// share is gateway self's part of n replicas among members: n split as
// evenly as it goes, the first (by id) taking the remainder's ones.
func share(n int, self string, members []string) int {
	if len(members) == 0 {
		return n
	}
	rank := slices.Index(members, self)
	if rank < 0 {
		rank = len(members)
	}
	g := len(members)
	s := n / g
	if rank < n%g {
		s++
	}
	return s
}
