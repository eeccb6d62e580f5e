// Package queue declares the durable queue of asynchronous invocations and
// their dead letters. Backends live in sub-packages (natsqueue).
//
// Delivery is at least once. A message carries its own attempt count, so a
// delay that is not an attempt (the function was at capacity) does not use
// one up. Implementations are safe for concurrent use.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// ErrUnavailable means the queue could not durably take a message.
var ErrUnavailable = errors.New("queue unavailable")

// ErrNotFound means no such dead letter.
var ErrNotFound = errors.New("not found")

// Message is one accepted asynchronous invocation.
type Message struct {
	CallID string `json:"callId"`
	// CorrelationID is the caller's own X-Call-Id, if it sent one.
	CorrelationID string      `json:"correlationId,omitempty"`
	Namespace     string      `json:"namespace"`
	Function      string      `json:"function"`
	Method        string      `json:"method"`
	Path          string      `json:"path"` // below the function, with a leading slash
	Query         string      `json:"query,omitempty"`
	Header        http.Header `json:"header,omitempty"`
	Body          []byte      `json:"body,omitempty"`
	// URL, if set, is an outside endpoint to deliver to instead of a
	// function (an event gateway function of type http); Target names it
	// for people (space/functionId).
	URL      string    `json:"url,omitempty"`
	Target   string    `json:"target,omitempty"`
	Enqueued time.Time `json:"enqueued"`
	// Attempt is how many deliveries have been tried (0 before the first).
	Attempt int `json:"attempt"`
	// NotBefore delays the next attempt (a retry's backoff).
	NotBefore time.Time `json:"notBefore,omitzero"`
	// LastStatus and LastError describe the previous attempt.
	LastStatus int    `json:"lastStatus,omitempty"`
	LastError  string `json:"lastError,omitempty"`
	// BodyRef names where a body too large to travel in the message is
	// stored; the queue fills Body from it on delivery.
	BodyRef string `json:"bodyRef,omitempty"`
	// Redrives counts how often the call was redriven from a dead letter.
	Redrives int `json:"redrives,omitempty"`
	// CallbackFor, on a callback delivery, is the call whose result it
	// posts to URL; CallRecord is that call's final record (JSON), which
	// the callback's outcome completes.
	CallbackFor string          `json:"callbackFor,omitempty"`
	CallRecord  json.RawMessage `json:"callRecord,omitempty"`
}

// Owner is the namespace and function a message is recorded and
// dead-lettered under: its function's, or for an outside endpoint its
// Target's (space/functionId).
func (m Message) Owner() (namespace, function string) {
	if m.URL != "" {
		namespace, function, _ = strings.Cut(m.Target, "/")
		return namespace, function
	}
	return m.Namespace, m.Function
}

// Delivery is a message handed to a consumer; exactly one of Done, Ack,
// Retry or Defer must be called.
type Delivery interface {
	Message() Message
	// Done settles the message: the call is over, and a body stored
	// apart (BodyRef) is released.
	Done() error
	// Ack settles the message but keeps its stored body, which a dead
	// letter made of it refers to.
	Ack() error
	// Retry settles this attempt and queues next (attempt already counted)
	// durably before acknowledging this one, so nothing is lost in between.
	Retry(next Message) error
	// Defer asks for redelivery after delay without using an attempt.
	Defer(delay time.Duration) error
	// InProgress extends the time the consumer has before redelivery.
	InProgress() error
}

// DeadLetter is an invocation that ran out of attempts or of time.
type DeadLetter struct {
	CallID     string    `json:"callId"`
	Namespace  string    `json:"namespace"`
	Function   string    `json:"function"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"lastStatus,omitempty"`
	Error      string    `json:"error"`
	Enqueued   time.Time `json:"enqueued"`
	LastTry    time.Time `json:"lastAttempt"`
	Message    Message   `json:"message"`
}

// Queue is the durable queue.
type Queue interface {
	// Enqueue returns nil only once the message is durably stored.
	Enqueue(ctx context.Context, m Message) error
	// Consume hands the messages of one function to handle, at most
	// maxInFlight at a time, until ctx ends.
	Consume(ctx context.Context, namespace, function string, maxInFlight int, handle func(Delivery)) error
	// Pending counts a function's messages not yet settled: queued, or
	// handed to its consumer and not yet acknowledged.
	Pending(ctx context.Context, namespace, function string) (int, error)
	// RemoveConsumer deletes a function's consumer; its messages stay
	// queued for a later consumer.
	RemoveConsumer(ctx context.Context, namespace, function string) error
	// Functions lists the functions that have messages queued or a
	// consumer, so that those of deleted functions can be drained.
	Functions(ctx context.Context) ([][2]string, error)
	// DeadLetter stores a dead letter durably.
	DeadLetter(ctx context.Context, d DeadLetter) error
	// DeadLetters lists dead letters, of one function if name is not "".
	DeadLetters(ctx context.Context, namespace, name string) ([]DeadLetter, error)
	// GetDeadLetter returns one by call id, or ErrNotFound.
	GetDeadLetter(ctx context.Context, callID string) (DeadLetter, error)
	// DeleteDeadLetter removes one by call id (and a body stored apart),
	// or returns ErrNotFound.
	DeleteDeadLetter(ctx context.Context, callID string) error
	// Redrive queues a dead letter's call again, with fresh attempts and
	// age from now, then removes the dead letter; ErrNotFound if none.
	Redrive(ctx context.Context, callID string, now time.Time) (DeadLetter, error)
	// Claim records, for the queue's idempotency window, that key (an
	// Idempotency-Key, scoped by the caller) belongs to callID, as pending.
	// If the key is held it returns the holder's call id, claimed false, and
	// whether the holder's invocation is known to be queued.
	Claim(ctx context.Context, key, callID string) (holder string, claimed, queued bool, err error)
	// Queued marks a claim's invocation as durably queued.
	Queued(ctx context.Context, key string) error
	// TakeOver claims a key still pending since before stale for its
	// holder's call id, so that the caller queues it (a request that
	// claimed it may have died before queueing). It reports false if another
	// caller changed the claim first.
	TakeOver(ctx context.Context, key string, stale time.Time) (bool, error)
	// Release drops a claim whose invocation was never queued.
	Release(ctx context.Context, key string) error
}
