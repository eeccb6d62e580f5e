package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/lambdaclient"
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
	// Lambda invokes functions of type awslambda through a Lambda Invoke
	// endpoint; LambdaRemote says the endpoint is not nimbus's own.
	Lambda       LambdaInvoker
	LambdaRemote bool
	// Qualified resolves a qualified ARN of a local Lambda function (a
	// version or alias) to the function that runs it; nil serves
	// $LATEST only.
	Qualified func(ctx context.Context, namespace, name, qualifier string) (string, error)
}

// LambdaInvoker invokes a Lambda function by ARN (lambdaclient.Client).
type LambdaInvoker interface {
	Invoke(ctx context.Context, r lambdaclient.Request) (lambdaclient.Result, error)
}

// localLambda says which nimbus function an awslambda function is when
// nimbus's own Lambda API serves it and the registration gives no keys:
// the ARN's function in the space's namespace (NAME, or NAMESPACE_NAME of
// that same namespace), of nimbus's account and region. A space reaches
// only its own namespace so; a key of another namespace reaches that one,
// through the signed path. ok is false when the function goes the signed
// path.
func (d *Deliverer) localLambda(ctx context.Context, space string, fn Function) (name string, ok bool, err error) {
	p := fn.Provider
	if d.LambdaRemote || p.AWSAccessKeyID != "" {
		return "", false, nil
	}
	a, err := ParseLambdaARN(p.ARN)
	if err != nil {
		return "", true, err
	}
	if a.Account != function.LambdaAccount || a.Region != function.LambdaRegion {
		return "", true, fmt.Errorf("%s is of account %s in %s; nimbus's own Lambda API serves account %s in %s (start nimbus with --lambda-endpoint to reach another)",
			p.ARN, a.Account, a.Region, function.LambdaAccount, function.LambdaRegion)
	}
	ns := Namespace(space)
	name = a.Name
	if before, after, cut := strings.Cut(a.Name, "_"); cut {
		if before != ns {
			return "", true, fmt.Errorf("%s names a function of namespace %q; space %q reaches functions of its own namespace %q (register the function with an access key of %q to reach that one)",
				p.ARN, before, space, ns, before)
		}
		name = after
	}
	if err := function.ValidateName("name", name); err != nil || function.IsVersionName(name) {
		return "", true, fmt.Errorf("%s names no nimbus function: use the function's name, qualified by a version or alias", p.ARN)
	}
	if q := a.Qualifier; q != "" && q != "$LATEST" {
		if d.Qualified == nil {
			return "", true, fmt.Errorf("%s: this nimbus serves $LATEST only", p.ARN)
		}
		target, err := d.Qualified(ctx, ns, name, q)
		if err != nil {
			return "", true, fmt.Errorf("%s: %w", p.ARN, err)
		}
		return target, true, nil
	}
	return name, true, nil
}

// lambdaRequest is an invocation of fn's ARN, signed with its keys.
func lambdaRequest(fn Function, body []byte, event bool) lambdaclient.Request {
	p := fn.Provider
	return lambdaclient.Request{ARN: p.ARN, Region: p.Region, AccessKeyID: p.AWSAccessKeyID, SecretAccessKey: p.AWSSecretAccessKey,
		SessionToken: p.AWSSessionToken, Event: event, Payload: body}
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
	if fn.Type == TypeAWSLambda {
		name, local, err := d.localLambda(ctx, sub.Space, fn)
		if !local {
			// The Lambda API queues it (202) and retries it, as Lambda
			// does an asynchronous invocation.
			if d.Lambda == nil {
				return fmt.Errorf("function %s is of type awslambda, and no Lambda endpoint is set", fn.FunctionID)
			}
			res, err := d.Lambda.Invoke(ctx, lambdaRequest(fn, body, true))
			if err != nil {
				return err
			}
			if res.Status != http.StatusAccepted {
				return fmt.Errorf("the Lambda API answered %d to an asynchronous invocation of %s", res.Status, fn.Provider.ARN)
			}
			return nil
		}
		if err != nil {
			return d.Queue.DeadLetter(ctx, queue.DeadLetter{CallID: id, Namespace: Namespace(sub.Space), Function: fn.FunctionID,
				Error:    fmt.Sprintf("event %s for subscription %s: %v", ev.ID, sub.SubscriptionID, err),
				Enqueued: m.Enqueued, LastTry: m.Enqueued, Message: m})
		}
		fn.Type, fn.Provider = TypeNimbus, Provider{Function: name}
	}
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
	if fn.Type == TypeAWSLambda {
		name, local, err := d.localLambda(ctx, sub.Space, fn)
		switch {
		case err != nil:
			return reply{}, err
		case local:
			fn.Type, fn.Provider = TypeNimbus, Provider{Function: name}
		case d.Lambda == nil:
			return reply{}, fmt.Errorf("function %s is of type awslambda, and no Lambda endpoint is set", fn.FunctionID)
		default:
			res, err := d.Lambda.Invoke(ctx, lambdaRequest(fn, body, false))
			if err != nil {
				return reply{}, err
			}
			if res.FunctionError != "" {
				return reply{}, fmt.Errorf("%s failed (%s): %s", fn.Provider.ARN, res.FunctionError, res.Payload)
			}
			return reply{status: http.StatusOK, header: http.Header{"Content-Type": {"application/json"}}, body: res.Payload}, nil
		}
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
