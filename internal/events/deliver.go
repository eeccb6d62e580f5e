package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

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

// deliveryID is the call id of an event's delivery to one subscription: the
// same for a repeated event (same source and id), so the queue keeps one.
func deliveryID(ev Event, sub Subscription) string {
	sum := sha256.Sum256([]byte(ev.Source + "\x00" + ev.ID + "\x00" + sub.Space + "\x00" + sub.SubscriptionID))
	return "ev-" + hex.EncodeToString(sum[:12])
}

// Enqueue stores one durable delivery of ev for sub, rendered in the
// subscription's format. It returns nil only once the delivery is stored
// (as a queued invocation, or as a dead letter when its nimbus function
// does not exist).
func (d *Deliverer) Enqueue(ctx context.Context, ev Event, sub Subscription, fn Function) error {
	hdr, body, err := ev.render(ctx, format(sub, fn))
	if err != nil {
		return err
	}
	id := deliveryID(ev, sub)
	hdr.Set("X-Call-Id", id)
	m := queue.Message{CallID: id, Method: http.MethodPost, Path: "/", Header: hdr, Body: body, Enqueued: time.Now().UTC()}
	switch fn.Type {
	case TypeNimbus:
		m.Namespace, m.Function = Namespace(sub.Space), fn.Provider.Function
		if _, ok := d.Spec(m.Namespace, m.Function); !ok {
			return d.Queue.DeadLetter(ctx, queue.DeadLetter{CallID: id, Namespace: m.Namespace, Function: m.Function,
				Error:    fmt.Sprintf("event %s for subscription %s: function %s does not exist in namespace %s", ev.ID, sub.SubscriptionID, m.Function, m.Namespace),
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

// Invoke delivers ev to a sync subscription's function and returns its
// answer as it is (status, headers, body up to maxAnswer). An error means
// the function could not be reached or its answer not read.
func (d *Deliverer) Invoke(ctx context.Context, ev Event, sub Subscription, fn Function, callID string) (reply, error) {
	hdr, body, err := ev.render(ctx, format(sub, fn))
	if err != nil {
		return reply{}, err
	}
	switch fn.Type {
	case TypeNimbus:
		req, _ := http.NewRequestWithContext(gateway.WithCallID(ctx, callID), http.MethodPost,
			"/function/"+fn.Provider.Function+"."+Namespace(sub.Space)+"/", bytes.NewReader(body))
		req.Header = hdr
		rec := gateway.NewCapture(maxAnswer + 1)
		d.Gateway.ServeHTTP(rec, req)
		if rec.Cut {
			return reply{}, fmt.Errorf("the function's answer is over %d bytes", maxAnswer)
		}
		return reply{status: rec.StatusCode(), header: rec.Header(), body: rec.Body.Bytes()}, nil
	case TypeHTTP:
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fn.Provider.URL, bytes.NewReader(body))
		req.Header = hdr
		req.Header.Set("X-Call-Id", callID)
		// A redirect goes to the caller, not followed here.
		client := *d.Client
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := client.Do(req)
		if err != nil {
			return reply{}, fmt.Errorf("calling %s: %w", fn.Provider.URL, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
		if err != nil {
			return reply{}, fmt.Errorf("reading the answer of %s: %w", fn.Provider.URL, err)
		}
		if len(out) > maxAnswer {
			return reply{}, fmt.Errorf("the function's answer is over %d bytes", maxAnswer)
		}
		return reply{status: resp.StatusCode, header: resp.Header, body: out}, nil
	}
	return reply{}, fmt.Errorf("function %s has type %q", fn.FunctionID, fn.Type)
}

// maxAnswer bounds a sync function's answer.
const maxAnswer = 6 << 20
