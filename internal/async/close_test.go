package async

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/queue"
)

// lateQueue hands its consumer one more delivery after the consumer's
// context has ended, as a queue with deliveries in its buffer may.
type lateQueue struct {
	queue.Queue // unused methods: a call panics
	delivery    *recordedDelivery
	entered     chan struct{}
	handedOver  chan struct{}
}

func (q *lateQueue) Consume(ctx context.Context, _, _ string, _ int, fn func(queue.Delivery)) error {
	close(q.entered)
	<-ctx.Done()
	fn(q.delivery)
	close(q.handedOver)
	return ctx.Err()
}

type recordedDelivery struct {
	queue.Delivery
	deferred, settled atomic.Int32
}

func (d *recordedDelivery) Message() queue.Message {
	return queue.Message{CallID: "c1", Namespace: "default", Function: "f", Attempt: 1, Enqueued: time.Now()}
}
func (d *recordedDelivery) Defer(time.Duration) error { d.deferred.Add(1); return nil }
func (d *recordedDelivery) Ack() error                { d.settled.Add(1); return nil }
func (d *recordedDelivery) Done() error               { d.settled.Add(1); return nil }

// TestCloseHandsLateDeliveriesBack: a delivery arriving while the
// dispatcher closes goes back to the queue, for another gateway; it is
// not run, nor dead-lettered because this gateway no longer knows its
// function (a gateway pod stopped under load dead-lettered calls as
// "function was deleted").
func TestCloseHandsLateDeliveriesBack(t *testing.T) {
	q := &lateQueue{delivery: &recordedDelivery{}, entered: make(chan struct{}), handedOver: make(chan struct{})}
	d := &Dispatcher{Queue: q, Spec: func(string, string) (function.Function, bool) { return function.Function{}, false }}
	d.ConsumeOutbound("default", "f", 1)
	<-q.entered
	d.Close()
	<-q.handedOver
	if q.delivery.deferred.Load() != 1 || q.delivery.settled.Load() != 0 {
		t.Fatalf("a late delivery: deferred %d, settled %d; want it handed back", q.delivery.deferred.Load(), q.delivery.settled.Load())
	}
}
