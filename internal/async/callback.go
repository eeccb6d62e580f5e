package async

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"nimbus/internal/calls"
	"nimbus/internal/queue"
)

// CallbackHeader names the URL that receives an async call's result.
const CallbackHeader = "X-Callback-Url"

// CallbackNamespace and CallbackFunction are where callback deliveries are
// queued: each is a durable message of its own, so the call is settled
// before its callback is tried and a slow or failing receiver never makes
// the function run again.
const (
	CallbackNamespace = "_callback"
	CallbackFunction  = "_callback"
)

// maxCallbackBody is how much of a function's response a callback carries;
// beyond it the body is cut and X-Nimbus-Body-Truncated says so.
const maxCallbackBody = 8 << 20

// callbackAttempts and callbackBackoff: a callback is tried 3 times, 1s
// then 2s apart, on a network error, a 5xx or a 429.
const callbackAttempts = 3

var callbackBackoff = time.Second

// queueCallback stores the callback of a call that ended (done, or dead
// when it became a dead letter) as a delivery of its own, as OpenFaaS's
// queue-worker posts it: the function's response headers and body, with
// X-Call-Id, X-Function-Name, X-Function-Status and X-Duration-Seconds
// (and X-Nimbus-Dead-Letter: true for a dead letter). rec is the call's
// final record; its Callback says the callback is queued, and the
// callback's outcome completes it. It reports false, having deferred the
// message, when the callback could not be stored.
func (d *Dispatcher) queueCallback(dl queue.Delivery, m queue.Message, res result, rec *calls.Record, dead bool) bool {
	target := m.Header.Get(CallbackHeader)
	if target == "" || d.Outbound == nil {
		return true
	}
	h := http.Header{}
	for k, v := range res.header {
		if k != "Content-Length" && k != "Transfer-Encoding" && k != "Connection" {
			h[k] = v
		}
	}
	h.Set("X-Call-Id", m.CallID)
	h.Set("X-Function-Name", m.Function)
	h.Set("X-Function-Status", strconv.Itoa(res.status))
	h.Set("X-Duration-Seconds", strconv.FormatFloat(res.took.Seconds(), 'f', 6, 64))
	if dead {
		h.Set("X-Nimbus-Dead-Letter", "true")
	}
	if res.cut {
		h.Set("X-Nimbus-Body-Truncated", "true")
	}
	rec.Callback = "queued" // in the final record, until the outcome completes it
	raw, _ := json.Marshal(rec)
	ns, fn := m.Owner()
	cb := queue.Message{CallID: "cb-" + m.CallID, Namespace: CallbackNamespace, Function: CallbackFunction,
		Method: http.MethodPost, URL: target, Target: ns + "/" + fn, Header: h, Body: res.body,
		Enqueued: time.Now().UTC(), CallbackFor: m.CallID, CallRecord: raw,
		Redrives: m.Redrives} // a redriven call's callback is a new message
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Queue.Enqueue(ctx, cb); err != nil {
		d.logger().Warn("could not queue a callback; the call will be delivered again", "call", m.CallID, "err", err)
		dl.Defer(time.Second)
		return false
	}
	return true
}

// deliverCallback tries one callback delivery; on a network error, a 5xx or
// a 429 it is tried again (3 tries in all, 1s then 2s apart), and its
// outcome completes the call's record.
func (d *Dispatcher) deliverCallback(dl queue.Delivery, m queue.Message) {
	if wait := time.Until(m.NotBefore); wait > 0 {
		dl.Defer(wait)
		return
	}
	attempt := m.Attempt + 1
	ctx, cancel := context.WithCancel(context.Background())
	d.keepAlive(ctx, dl)
	res := d.postCallback(m)
	cancel()
	var outcome string
	switch {
	case res.status != 0 && res.status < 500 && res.status != http.StatusTooManyRequests:
		outcome = fmt.Sprintf("delivered (%d)", res.status)
	case attempt < callbackAttempts:
		next := m
		next.Attempt, next.LastStatus, next.LastError = attempt, res.status, res.errText
		next.NotBefore = time.Now().Add(callbackBackoff * time.Duration(attempt))
		if err := dl.Retry(next); err != nil {
			d.logger().Warn("could not queue a callback's next try; it will be delivered again", "call", m.CallbackFor, "err", err)
		}
		return
	default:
		outcome = fmt.Sprintf("failed after %d tries: %s", callbackAttempts, res.errText)
		d.logger().Warn("callback not delivered", "call", m.CallbackFor, "url", m.URL, "err", res.errText)
	}
	var rec calls.Record
	if err := json.Unmarshal(m.CallRecord, &rec); err != nil || rec.CallID == "" {
		dl.Done()
		return
	}
	rec.Callback, rec.Updated = outcome, time.Now().UTC()
	d.settle(dl, rec, dl.Done)
}

// postCallback posts a callback through the outbound-guarded client.
func (d *Dispatcher) postCallback(m queue.Message) result {
	if d.Outbound == nil {
		return result{errText: "callbacks are not enabled"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, m.Method, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return result{errText: err.Error()}
	}
	for k, v := range m.Header {
		req.Header[k] = v
	}
	resp, err := d.Outbound.Do(req)
	if err != nil {
		return result{errText: err.Error()}
	}
	resp.Body.Close()
	res := result{status: resp.StatusCode}
	if res.status >= 500 || res.status == http.StatusTooManyRequests {
		res.errText = fmt.Sprintf("answered %d", res.status)
	}
	return res
}
