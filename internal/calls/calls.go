// Package calls keeps a record of every invocation, synchronous and
// asynchronous, for a bounded time: who was called, how it ended, how long it
// took and after how many attempts.
//
// Records are written off the request path: a Recorder buffers them and
// hands batches to a Sink (the backbone) every FlushEvery; an Index, fed
// from the backbone, answers lookups. A record is therefore visible a short
// while after its call ends (about FlushEvery), and when the sink cannot
// keep up beyond MaxPending records, new ones are dropped and counted — a
// call is never slowed or failed for the sake of its record.
package calls

import (
	"context"
	"errors"
	"time"
)

// Modes of a call.
const (
	Sync  = "sync"
	Async = "async"
)

// States of a call.
const (
	// Queued: an async call accepted and not yet run.
	Queued = "queued"
	// Retrying: an async call whose last attempt failed, with attempts left.
	Retrying = "retrying"
	// Done: the call has ended with Status.
	Done = "done"
	// DeadLettered: an async call that ran out of attempts or of time.
	DeadLettered = "dead-lettered"
)

// ErrNotFound means no record of that call id is kept.
var ErrNotFound = errors.New("call not found")

// Record is what is kept of one call. Later records of the same call id (an
// async call's attempts) replace earlier ones.
type Record struct {
	CallID string `json:"callId"`
	// CorrelationID is the X-Call-Id the caller sent, if any: kept for the
	// caller's own tracing, never used as the call's key.
	CorrelationID string    `json:"correlationId,omitempty"`
	Namespace     string    `json:"namespace"`
	Function      string    `json:"function"`
	Mode          string    `json:"mode"`
	State         string    `json:"state"`
	Status        int       `json:"status,omitempty"` // the last HTTP status (0 before the first attempt)
	Start         time.Time `json:"start"`            // when the call was made (accepted, for async)
	// Duration is of the last attempt, in seconds.
	Duration float64 `json:"duration"`
	Attempts int     `json:"attempts"`
	Error    string  `json:"error,omitempty"`
	// Callback reports an async call's callback delivery, if one was asked for.
	Callback string `json:"callback,omitempty"`
	// Updated is when this record was written.
	Updated time.Time `json:"updated"`
}

// Sink stores batches of records durably.
type Sink interface {
	Append(ctx context.Context, batch []Record) error
}

// Source replays stored batches from the oldest kept, then follows new
// ones, until ctx ends.
type Source interface {
	Follow(ctx context.Context, handle func([]Record)) error
}
