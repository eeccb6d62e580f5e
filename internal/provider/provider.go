// Package provider keeps a function at a number of ready replicas: told
// Ensure(function, revision, n), a provider starts what is missing, stops
// what is surplus (after the activator has drained it), rolls a new
// revision over (the old replicas serve until the new ones are ready),
// replaces replicas that exit, and reports the ready endpoints each time
// they change. Deciding n is the autoscaler's job; routing requests to the
// endpoints is the gateway's.
//
// Local runs replicas through a driver.Driver (local processes, Docker
// containers); providertest is the conformance suite every provider passes.
package provider

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"nimbus/internal/function"
)

// Target is what a provider is asked to keep.
type Target struct {
	Function function.Function
	Revision uint64
	Replicas int
	// GrowOnly asks a provider whose replicas are shared by every gateway
	// (SharesReplicas) to add replicas up to Replicas but remove none:
	// another gateway, the scaling decider, decides removals.
	GrowOnly bool
}

// SharesReplicas says whether p's replicas are the cluster's rather than
// this gateway's: every gateway's provider sees and sets the same ones (a
// Kubernetes Deployment), so each is asked for the whole count, not a
// share, and only the decider's removes replicas.
func SharesReplicas(p Provider) bool {
	s, ok := p.(interface{ SharesReplicas() bool })
	return ok && s.SharesReplicas()
}

// Endpoint is one ready replica.
type Endpoint struct {
	ID       string
	Revision uint64
	// Addr is the host:port the replica serves HTTP on; empty when
	// Transport carries its requests instead.
	Addr      string
	Transport http.RoundTripper
	Started   time.Time
	// StartTook is how long the replica took to become ready.
	StartTook time.Duration
}

// State is a function's replicas as a provider sees them.
type State struct {
	// Seq orders a provider's reports: a watcher keeps the highest it has
	// seen and drops older ones arriving late (NextSeq).
	Seq uint64
	// Revision and Desired are the current target's.
	Revision uint64
	Desired  int
	// Ready lists the ready replicas, the target revision's first; during a
	// rollout older revisions' follow until the new ones are ready.
	Ready []Endpoint
	// Starting counts replicas of the target revision being started.
	Starting int
	// Failed is set when the target revision's last start failed and none
	// of its replicas is ready: requests waiting for one should fail.
	Failed error
	// Reason is why the target revision does not start in the
	// substrate's own words (Kubernetes's: ErrImagePull and its message),
	// which callers may be told; empty when only the function's output
	// would say (that stays in its logs).
	Reason string
	// LastError is the last start failure or exit, with its time.
	LastError   string
	LastErrorAt time.Time
	// RetryAt, when set, is when the next start is tried (backoff after
	// failures).
	RetryAt time.Time
}

var seq atomic.Uint64

// NextSeq numbers a State report; it grows across every provider of the
// process, so a function that moves from one provider to another keeps
// its order.
func NextSeq() uint64 { return seq.Add(1) }

// ReadyOf counts the ready replicas of revision rev.
func (s State) ReadyOf(rev uint64) int {
	n := 0
	for _, e := range s.Ready {
		if e.Revision == rev {
			n++
		}
	}
	return n
}

// Provider keeps functions at their replica counts. Its methods are safe
// for concurrent use and do not block on replicas starting or stopping,
// except Remove and Close.
type Provider interface {
	// Name is the runtime functions select the provider with.
	Name() string
	// Ensure makes t the function's target.
	Ensure(t Target)
	// State reports a function's replicas; false when it has no target.
	State(namespace, name string) (State, bool)
	// Remove stops every replica of a function and forgets it.
	Remove(ctx context.Context, namespace, name string)
	// Close stops every replica.
	Close(ctx context.Context)
}

// CPUReporter is a Provider that can measure the CPU its replicas use.
type CPUReporter interface {
	// CPU is the CPU a function's ready replicas used (in millicores, summed
	// over them) since the last call; false when none could be measured.
	CPU(ctx context.Context, namespace, name string) (float64, bool)
}

// Watcher is told of a function's State each time its ready replicas,
// target or failure change, in order for each function. It must not block
// or call the provider.
type Watcher func(namespace, name string, s State)

// Drainer waits until no request is in flight on a replica that has been
// taken out of the ready list, or ctx ends. A provider calls it before
// stopping a replica.
type Drainer func(ctx context.Context, namespace, name, id string)
