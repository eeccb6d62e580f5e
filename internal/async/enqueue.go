// Package async runs invocations made through /async-function: the handler
// answers 202 only after the invocation is durably queued, and the
// dispatcher delivers queued invocations through the same invoke path as
// synchronous calls, with retries, backoff, a maximum event age and dead
// letters.
package async

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/queue"
	"nimbus/internal/reqbody"
)

// Prefix is the path prefix of asynchronous invocations.
const Prefix = "/async-function/"

// Handler accepts asynchronous invocations.
type Handler struct {
	Queue queue.Queue
	// Spec reports whether a function is served, and its spec.
	Spec         func(namespace, name string) (function.Function, bool)
	MaxBodyBytes int64 // default 32 MiB
	// CheckCallback vets an X-Callback-Url (the outbound guard); a refused
	// URL is a 400. Without it, X-Callback-Url is refused outright.
	CheckCallback func(ctx context.Context, url string) error
	// Record, if set, is given the record of every accepted call.
	Record func(calls.Record)
	// Space, if set, says why the disk cannot take a call now (503).
	Space func() error
	Now   func() time.Time
}

// hopHeaders are not kept with a queued invocation.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "asynchronous invocations are POST requests")
		return
	}
	name, ns, rest, ok := gateway.ParseRoute(Prefix, r.URL.Path)
	if ok {
		_, ok = h.Spec(ns, name)
	}
	if !ok {
		writeError(w, http.StatusNotFound, "function_not_found", fmt.Sprintf("function %q not found in namespace %q", name, ns))
		return
	}
	if h.Space != nil {
		if err := h.Space(); err != nil {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "queue_unavailable", "the invocation was not accepted: "+err.Error())
			return
		}
	}
	limit := h.MaxBodyBytes
	if limit == 0 {
		limit = 32 << 20
	}
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is %d bytes; the limit is %d", r.ContentLength, limit))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
			return
		}
		if reqbody.IsTimeout(err) {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time (the server's body deadline): send it whole, or faster")
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "reading the body failed: "+err.Error())
		return
	}
	if cb := r.Header.Get(CallbackHeader); cb != "" {
		if h.CheckCallback == nil {
			writeError(w, http.StatusBadRequest, "invalid_callback", "callbacks are not enabled on this server")
			return
		}
		if err := h.CheckCallback(r.Context(), cb); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_callback", "X-Callback-Url refused: "+err.Error())
			return
		}
	}
	// The call id is nimbus's own, always: a caller's X-Call-Id is only its
	// correlation id, so two calls sent with one X-Call-Id both run and
	// neither record overwrites the other. Repeats are deduplicated by
	// Idempotency-Key alone.
	hdr := r.Header.Clone()
	for _, k := range hopHeaders {
		hdr.Del(k)
	}
	callID, correlation := gateway.Correlate(hdr)
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	m := queue.Message{CallID: callID, CorrelationID: correlation, Namespace: ns, Function: name, Method: r.Method, Path: rest,
		Query: r.URL.RawQuery, Header: hdr, Body: body, Enqueued: now().UTC()}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	claim := ""
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > 256 {
			writeError(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key may be at most 256 bytes")
			return
		}
		claim = ns + "/" + name + "/" + key // a key is scoped to its function
		holder, done, err := h.claim(ctx, claim, callID)
		if err != nil {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "queue_unavailable", "the idempotency record could not be checked; retry")
			return
		}
		if done { // a repeat of a call already queued: the original stands
			w.Header().Set("X-Call-Id", holder)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		// This request queues it — under the original call id if it took
		// over a claim whose request died before queueing. The queue's
		// message id (call id, attempt 0) stores it once either way.
		callID = holder
		m.CallID = holder
		m.Header.Set("X-Call-Id", holder)
	}
	if err := h.Queue.Enqueue(ctx, m); err != nil {
		if claim != "" {
			h.Queue.Release(context.Background(), claim)
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "queue_unavailable", "the invocation was not accepted (the queue did not store it); retry")
		return
	}
	if claim != "" {
		// Should this fail, the invocation is still stored: a repeat finds
		// the claim pending, takes it over and publishes the same message id
		// again, which the queue drops as a duplicate.
		h.Queue.Queued(ctx, claim)
	}
	if h.Record != nil {
		h.Record(calls.Record{CallID: callID, CorrelationID: correlation, Namespace: ns, Function: name, Mode: calls.Async, State: calls.Queued,
			Start: m.Enqueued, Updated: m.Enqueued})
	}
	w.Header().Set("X-Call-Id", callID)
	w.WriteHeader(http.StatusAccepted)
}

// pendingGrace is how long a pending claim is left to the request that made
// it before a repeat takes it over.
const pendingGrace = 2 * time.Second

// claim settles an idempotency key: done reports that the holder's call is
// already queued; otherwise the caller must queue holder's call itself.
func (h *Handler) claim(ctx context.Context, key, callID string) (holder string, done bool, err error) {
	holder, claimed, queued, err := h.Queue.Claim(ctx, key, callID)
	if err != nil || claimed {
		return holder, false, err
	}
	for deadline := time.Now().Add(pendingGrace); !queued; {
		if time.Now().After(deadline) {
			took, err := h.Queue.TakeOver(ctx, key, time.Now().Add(-pendingGrace))
			if err != nil {
				return "", false, err
			}
			if took {
				return holder, false, nil
			}
			deadline = time.Now().Add(pendingGrace)
		}
		select {
		case <-ctx.Done():
			return "", false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if holder, _, queued, err = h.Queue.Claim(ctx, key, callID); err != nil {
			return "", false, err
		}
	}
	return holder, true, nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b.Error.Code, b.Error.Message = code, msg
	json.NewEncoder(w).Encode(b)
}
