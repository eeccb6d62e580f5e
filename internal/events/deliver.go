package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/queue"
)

// OutboundNamespace and OutboundFunction are where async deliveries to
// outside endpoints (functions of type http) are queued.
const (
	OutboundNamespace = "_outbound"
	OutboundFunction  = "_outbound"
)

// Deliverer sends events to functions.
type Deliverer struct {
	Queue queue.Queue
	// Gateway serves sync deliveries to nimbus functions.
	Gateway http.Handler
	// Spec reports whether a nimbus function exists.
	Spec func(namespace, name string) (function.Function, bool)
	// Client is the outbound-guarded client for outside endpoints.
	Client *http.Client
	// Record, if set, is given the record of each queued delivery.
	Record func(calls.Record)
}

// binaryMode renders an event as CloudEvents binary-mode headers and body.
func binaryMode(ctx context.Context, ev event.Event) (http.Header, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", nil)
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		return nil, nil, err
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	return req.Header, body, nil
}

// deliveryID is the call id of an event's delivery to one subscription: the
// same for a repeated event (same source and id), so the queue keeps one.
func deliveryID(ev event.Event, sub Subscription) string {
	sum := sha256.Sum256([]byte(ev.Source() + "\x00" + ev.ID() + "\x00" + sub.Space + "\x00" + sub.SubscriptionID))
	return "ev-" + hex.EncodeToString(sum[:12])
}

// Enqueue stores one durable delivery of ev for sub. It returns nil only
// once the delivery is stored (as a queued invocation, or as a dead letter
// when its nimbus function does not exist).
func (d *Deliverer) Enqueue(ctx context.Context, ev event.Event, sub Subscription, fn Function) error {
	hdr, body, err := binaryMode(ctx, ev)
	if err != nil {
		return err
	}
	id := deliveryID(ev, sub)
	hdr.Set("X-Call-Id", id)
	m := queue.Message{CallID: id, Method: http.MethodPost, Path: "/", Header: hdr, Body: body, Enqueued: time.Now().UTC()}
	switch fn.Type {
	case TypeNimbus:
		m.Namespace, m.Function = sub.Space, fn.Provider.Function
		if _, ok := d.Spec(m.Namespace, m.Function); !ok {
			return d.Queue.DeadLetter(ctx, queue.DeadLetter{CallID: id, Namespace: m.Namespace, Function: m.Function,
				Error:    fmt.Sprintf("event %s for subscription %s: function %s does not exist in namespace %s", ev.ID(), sub.SubscriptionID, m.Function, m.Namespace),
				Enqueued: m.Enqueued, LastTry: m.Enqueued, Message: m})
		}
	case TypeHTTP:
		m.Namespace, m.Function = OutboundNamespace, OutboundFunction
		m.URL, m.Target = fn.Provider.URL, sub.Space+"/"+fn.FunctionID
	default:
		return fmt.Errorf("function %s has type %q", fn.FunctionID, fn.Type)
	}
	if err := d.Queue.Enqueue(ctx, m); err != nil {
		return err
	}
	if d.Record != nil {
		ns, name := m.Owner()
		d.Record(calls.Record{CallID: id, Namespace: ns, Function: name, Mode: calls.Async, State: calls.Queued,
			Start: m.Enqueued, Updated: m.Enqueued})
	}
	return nil
}

// syncResult is what a sync subscription's function answers.
type syncResult struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// errBadAnswer: the function did not answer {statusCode, headers, body}.
var errBadAnswer = errors.New(`the function did not return a JSON object {"statusCode", "headers", "body"}`)

// Invoke delivers ev to fn and waits for its answer.
func (d *Deliverer) Invoke(ctx context.Context, ev event.Event, space string, fn Function, callID string) (syncResult, error) {
	hdr, body, err := binaryMode(ctx, ev)
	if err != nil {
		return syncResult{}, err
	}
	var status int
	var out []byte
	switch fn.Type {
	case TypeNimbus:
		req, _ := http.NewRequestWithContext(gateway.WithCallID(ctx, callID), http.MethodPost, "/function/"+fn.Provider.Function+"."+space+"/", bytes.NewReader(body))
		req.Header = hdr
		rec := gateway.NewCapture(maxAnswer + 1)
		d.Gateway.ServeHTTP(rec, req)
		status, out = rec.StatusCode(), rec.Body.Bytes()
	case TypeHTTP:
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fn.Provider.URL, bytes.NewReader(body))
		req.Header = hdr
		req.Header.Set("X-Call-Id", callID)
		resp, err := d.Client.Do(req)
		if err != nil {
			return syncResult{}, fmt.Errorf("calling %s: %w", fn.Provider.URL, err)
		}
		out, _ = io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
		resp.Body.Close()
		status = resp.StatusCode
	default:
		return syncResult{}, fmt.Errorf("function %s has type %q", fn.FunctionID, fn.Type)
	}
	if status >= 300 {
		return syncResult{}, fmt.Errorf("the function answered %d: %s", status, bytes.TrimSpace(out[:min(len(out), 512)]))
	}
	if len(out) > maxAnswer {
		return syncResult{}, fmt.Errorf("the function's answer is over %d bytes", maxAnswer)
	}
	var res syncResult
	if err := json.Unmarshal(out, &res); err != nil {
		return syncResult{}, errBadAnswer
	}
	if res.StatusCode == 0 {
		res.StatusCode = http.StatusOK
	}
	if res.StatusCode < 100 || res.StatusCode > 999 {
		return syncResult{}, errBadAnswer
	}
	return res, nil
}

// maxAnswer bounds a sync function's answer.
const maxAnswer = 6 << 20
