package async

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/queue"
	"nimbus/internal/store"
)

// Dispatcher delivers queued invocations. It keeps one consumer per
// function (Apply and Remove make it a controller target), each allowed the
// function's capacity — scale.max × scale.maxConcurrency — in flight.
type Dispatcher struct {
	Queue  queue.Queue
	Invoke http.Handler // the gateway: the same path as synchronous calls
	Spec   func(namespace, name string) (function.Function, bool)
	// Stored, if set, asks the store whether a function exists: Prune
	// drains the queue of a function the gateway does not know only if
	// the store does not have it either (right after a NATS leader
	// change a new gateway's first view of the functions may be short).
	Stored func(ctx context.Context, namespace, name string) (bool, error)
	// Record, if set, is given the call record after every attempt.
	Record func(calls.Record)
	// RecordThen, if set, is given a call's final record and what settles
	// its message, to run once the record is stored (calls.Recorder's).
	RecordThen func(calls.Record, func())
	// Outbound, if set, is the outbound-guarded client for X-Callback-Url
	// deliveries and outside endpoints; without it neither is called.
	Outbound *http.Client
	Logger   *slog.Logger
	// Heartbeat is how often a running delivery tells the queue it is still
	// in progress; it must be well under the queue's ack wait. Default 10s.
	Heartbeat time.Duration

	mu        sync.Mutex
	consumers map[string]*consumer
	closed    bool // Close was called: deliveries go back to the queue
	wg        sync.WaitGroup
}

type consumer struct {
	capacity int
	cancel   context.CancelFunc
	ctx      context.Context
	removing bool // the function is gone: drain, then delete the consumer
}

// Apply starts (or resizes) the function's consumer.
func (d *Dispatcher) Apply(rec store.Record) error {
	fn := rec.Function
	d.consume(fn.Namespace, fn.Name, fn.Scale.Max*fn.Scale.MaxConcurrency)
	return nil
}

// ConsumeOutbound starts the consumer of deliveries to outside endpoints,
// queued under namespace and name, with capacity in flight.
func (d *Dispatcher) ConsumeOutbound(namespace, name string, capacity int) {
	d.consume(namespace, name, capacity)
}

// consume starts (or resizes) the consumer of one queue subject.
func (d *Dispatcher) consume(namespace, name string, capacity int) *consumer {
	key := function.Key(namespace, name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil // closing: no consumer starts
	}
	if d.consumers == nil {
		d.consumers = map[string]*consumer{}
	}
	if c := d.consumers[key]; c != nil {
		c.removing = false
		if c.capacity == capacity {
			return c
		}
		c.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{capacity: capacity, cancel: cancel, ctx: ctx}
	d.consumers[key] = c
	d.wg.Go(func() {
		for ctx.Err() == nil {
			err := d.Queue.Consume(ctx, namespace, name, capacity, func(dl queue.Delivery) {
				// A delivery the queue hands over as the dispatcher closes
				// goes back at once, for another gateway: its function's
				// spec may already be gone from this one.
				d.mu.Lock()
				if d.closed {
					d.mu.Unlock()
					dl.Defer(0)
					return
				}
				d.wg.Add(1)
				d.mu.Unlock()
				go func() {
					defer d.wg.Done()
					d.process(dl)
				}()
			})
			if err != nil && ctx.Err() == nil {
				d.logger().Warn("async consumer failed; restarting it", "function", key, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	})
	return c
}

// Remove retires the function's consumer: it keeps running until what is
// still queued for the function has ended as dead letters ("function was
// deleted"), then it is deleted from the queue and its goroutines end. A
// function deployed again meanwhile keeps it.
func (d *Dispatcher) Remove(namespace, name string) {
	key := function.Key(namespace, name)
	d.mu.Lock()
	c := d.consumers[key]
	if c != nil {
		c.removing = true
	}
	d.mu.Unlock()
	if c != nil {
		d.wg.Go(func() { d.retire(namespace, name, c) })
	}
}

// DrainInterval is how often a retiring consumer checks whether its
// function's messages have all been settled.
var DrainInterval = 200 * time.Millisecond

func (d *Dispatcher) retire(namespace, name string, c *consumer) {
	key := function.Key(namespace, name)
	t := time.NewTicker(DrainInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done(): // replaced, or the dispatcher is closing
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		n, err := d.Queue.Pending(ctx, namespace, name)
		cancel()
		if err != nil || n > 0 {
			continue
		}
		d.mu.Lock()
		if d.consumers[key] != c || !c.removing {
			d.mu.Unlock()
			return // deployed again
		}
		delete(d.consumers, key)
		c.cancel()
		d.mu.Unlock()
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Queue.RemoveConsumer(ctx, namespace, name); err != nil {
			d.logger().Warn("could not delete the async consumer of a deleted function", "function", key, "err", err)
		}
		return
	}
}

// Prune drains and deletes the consumers and queued messages of functions
// that no longer exist (deleted while nimbus was down): call it once the
// controller has applied every function.
func (d *Dispatcher) Prune(ctx context.Context) error {
	fns, err := d.Queue.Functions(ctx)
	if err != nil {
		return err
	}
	for _, f := range fns {
		ns, name := f[0], f[1]
		d.mu.Lock()
		_, live := d.consumers[function.Key(ns, name)]
		d.mu.Unlock()
		if live {
			continue
		}
		if _, ok := d.Spec(ns, name); ok {
			continue
		}
		if d.Stored != nil {
			if there, err := d.Stored(ctx, ns, name); there || err != nil {
				if err != nil {
					d.logger().Warn("could not ask the store whether a function with queued calls exists; its queue is kept", "function", function.Key(ns, name), "err", err)
				}
				continue
			}
		}
		d.logger().Info("draining the async queue of a deleted function", "function", function.Key(ns, name))
		d.consume(ns, name, 1)
		d.Remove(ns, name)
	}
	return nil
}

// Consumers counts the consumers running (retiring ones included).
func (d *Dispatcher) Consumers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.consumers)
}

// Close stops every consumer and waits for deliveries in progress;
// deliveries arriving meanwhile are handed back to the queue.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	for _, c := range d.consumers {
		c.cancel()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// process decides what one delivery becomes: a call, a delay, a retry or a
// dead letter.
func (d *Dispatcher) process(dl queue.Delivery) {
	m := dl.Message()
	if m.CallbackFor != "" {
		d.deliverCallback(dl, m)
		return
	}
	now := time.Now()
	fn, ok := d.Spec(m.Namespace, m.Function)
	if m.URL != "" { // an outside endpoint: the default async policy
		fn, ok = function.Function{}.WithDefaults(), true
	}
	if !ok {
		d.dead(dl, m, result{status: m.LastStatus}, m.Attempt, "function was deleted before the invocation ran")
		return
	}
	if m.NotBefore.After(now) {
		dl.Defer(m.NotBefore.Sub(now))
		return
	}
	if age, maxAge := now.Sub(m.Enqueued), time.Duration(fn.Async.MaxEventAge); age > maxAge {
		d.dead(dl, m, result{status: m.LastStatus}, m.Attempt, fmt.Sprintf("maximum event age %s exceeded (%s old)", maxAge, age.Round(time.Millisecond)))
		return
	}
	attempt := m.Attempt + 1
	res := d.invoke(dl, fn, m, attempt)
	switch {
	case res.status == http.StatusTooManyRequests:
		// At capacity: not an attempt. Come back shortly.
		dl.Defer(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		return
	case res.status < 500:
		rec := d.record(m, attempt, calls.Done, res, "")
		if !d.queueCallback(dl, m, res, &rec, false) {
			return
		}
		d.settle(dl, rec, dl.Done)
		return
	}
	if attempt > fn.Async.Retries() {
		d.dead(dl, m, res, attempt, res.errText)
		return
	}
	next := m
	next.Attempt, next.LastStatus, next.LastError = attempt, res.status, res.errText
	next.NotBefore = time.Now().Add(Backoff(time.Duration(fn.Async.Backoff), attempt, rand.Float64()))
	if err := dl.Retry(next); err != nil {
		d.logger().Warn("could not queue a retry; the attempt will be redelivered", "call", m.CallID, "err", err)
		return
	}
	d.emit(d.record(m, attempt, calls.Retrying, res, res.errText))
}

// record is the call record of an attempt (or of a call that ended without one).
func (d *Dispatcher) record(m queue.Message, attempts int, state string, res result, errText string) calls.Record {
	ns, fn := m.Owner()
	return calls.Record{CallID: m.CallID, CorrelationID: m.CorrelationID, Namespace: ns, Function: fn, Mode: calls.Async, State: state,
		Status: res.status, Start: m.Enqueued, Duration: res.took.Seconds(), Attempts: attempts, Error: errText,
		Updated: time.Now().UTC()}
}

func (d *Dispatcher) emit(rec calls.Record) {
	if d.Record != nil {
		d.Record(rec)
	}
}

// settle writes a call's final record, then settles its message: a crash in
// between brings the call back (it runs again and is recorded) rather than
// leaving its record as it was. Until then the delivery is kept in
// progress, so that a record that waits (a full disk, a slow backbone) does
// not make the queue hand the call out again.
func (d *Dispatcher) settle(dl queue.Delivery, rec calls.Record, settle func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	d.keepAlive(ctx, dl)
	done := func() {
		cancel()
		d.wg.Go(func() {
			if err := settle(); err != nil {
				d.logger().Warn("could not settle a finished async call; it may run again", "call", rec.CallID, "err", err)
			}
		})
	}
	if d.RecordThen != nil {
		d.RecordThen(rec, done)
		return
	}
	d.emit(rec)
	done()
}

// result is how one attempt ended.
type result struct {
	status  int
	errText string
	took    time.Duration
	header  http.Header
	body    []byte
	cut     bool // body longer than kept
}

// invoke runs one attempt through the gateway.
func (d *Dispatcher) invoke(dl queue.Delivery, fn function.Function, m queue.Message, attempt int) result {
	ctx, cancel := context.WithCancel(gateway.Unrecorded(context.Background()))
	defer cancel()
	d.keepAlive(ctx, dl)
	if m.URL != "" {
		return d.invokeURL(ctx, m, attempt)
	}
	target := "/function/" + m.Function + "." + m.Namespace + m.Path
	if m.Query != "" {
		target += "?" + m.Query
	}
	req, err := http.NewRequestWithContext(gateway.WithCallID(ctx, m.CallID), m.Method, target, bytes.NewReader(m.Body))
	if err != nil {
		return result{status: http.StatusBadRequest, errText: err.Error()}
	}
	for k, v := range m.Header {
		req.Header[k] = v
	}
	req.Header.Del(CallbackHeader) // for nimbus, not for the function
	req.Header.Set("X-Nimbus-Attempt", strconv.Itoa(attempt))
	keep := 512
	if m.Header.Get(CallbackHeader) != "" && d.Outbound != nil {
		keep = maxCallbackBody
	}
	rec := gateway.NewCapture(keep)
	began := time.Now()
	d.Invoke.ServeHTTP(rec, req)
	res := result{status: rec.StatusCode(), took: time.Since(began), header: rec.Header(), body: rec.Body.Bytes(), cut: rec.Cut}
	if res.status >= 500 {
		res.errText = fmt.Sprintf("attempt %d answered %d: %s", attempt, res.status, bytes.TrimSpace(res.body[:min(len(res.body), 512)]))
	}
	return res
}

// keepAlive tells the queue the delivery is in progress until ctx ends, so
// that a call longer than the ack wait is not handed out again meanwhile.
func (d *Dispatcher) keepAlive(ctx context.Context, dl queue.Delivery) {
	every := d.Heartbeat
	if every == 0 {
		every = 10 * time.Second
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				dl.InProgress()
			}
		}
	}()
}

// invokeURL runs one attempt against an outside endpoint, through the
// outbound-guarded client; a network error counts as a 502.
func (d *Dispatcher) invokeURL(ctx context.Context, m queue.Message, attempt int) result {
	if d.Outbound == nil {
		return result{status: http.StatusBadGateway, errText: "outside endpoints are not enabled"}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, m.Method, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return result{status: http.StatusBadRequest, errText: err.Error()}
	}
	for k, v := range m.Header {
		req.Header[k] = v
	}
	req.Header.Set("X-Call-Id", m.CallID)
	req.Header.Set("X-Nimbus-Attempt", strconv.Itoa(attempt))
	began := time.Now()
	resp, err := d.Outbound.Do(req)
	if err != nil {
		return result{status: http.StatusBadGateway, took: time.Since(began), errText: fmt.Sprintf("attempt %d: %v", attempt, err)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	res := result{status: resp.StatusCode, took: time.Since(began), header: resp.Header}
	if res.status >= 500 {
		res.errText = fmt.Sprintf("attempt %d: %s answered %d: %s", attempt, m.URL, res.status, bytes.TrimSpace(b))
	}
	return res
}

// dead stores a dead letter, then settles the message. If the dead letter
// cannot be stored, the message stays queued and comes back.
func (d *Dispatcher) dead(dl queue.Delivery, m queue.Message, res result, attempts int, reason string) {
	ns, fn := m.Owner()
	rec := queue.DeadLetter{CallID: m.CallID, Namespace: ns, Function: fn, Attempts: attempts,
		LastStatus: res.status, Error: reason, Enqueued: m.Enqueued, LastTry: time.Now().UTC(), Message: m}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Queue.DeadLetter(ctx, rec); err != nil {
		d.logger().Warn("could not store a dead letter; the invocation stays queued", "call", m.CallID, "err", err)
		dl.Defer(time.Second)
		return
	}
	cr := d.record(m, attempts, calls.DeadLettered, res, reason)
	if !d.queueCallback(dl, m, res, &cr, true) {
		return
	}
	d.settle(dl, cr, dl.Ack) // the dead letter keeps the body
}
