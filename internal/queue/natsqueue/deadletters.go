package natsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/queue"
)

// DeadLetter stores a record under its call id.
func (q *Queue) DeadLetter(ctx context.Context, d queue.DeadLetter) error {
	if err := q.storeBody(ctx, &d.Message); err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := q.js.Publish(ctx, dlqSubj+"."+d.CallID, b, jetstream.WithMsgID("dlq#"+d.CallID+"#"+d.LastTry.String())); err != nil {
		return fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	return nil
}

// DeadLetters reads the dead-letter stream from its start.
func (q *Queue) DeadLetters(ctx context.Context, ns, name string) ([]queue.DeadLetter, error) {
	info, err := q.dlq.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	out := []queue.DeadLetter{}
	if info.State.Msgs == 0 {
		return out, nil
	}
	last := info.State.LastSeq
	cons, err := q.js.OrderedConsumer(ctx, dlqStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
		}
		meta, _ := msg.Metadata()
		var d queue.DeadLetter
		if json.Unmarshal(msg.Data(), &d) == nil && (ns == "" || d.Namespace == ns) && (name == "" || d.Function == name) {
			out = append(out, d)
		}
		if meta == nil || meta.Sequence.Stream >= last || meta.NumPending == 0 {
			return out, nil
		}
	}
}

func (q *Queue) lastDead(ctx context.Context, callID string) (*jetstream.RawStreamMsg, error) {
	m, err := q.dlq.GetLastMsgForSubject(ctx, dlqSubj+"."+callID)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: dead letter %s", queue.ErrNotFound, callID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", queue.ErrUnavailable, err)
	}
	return m, nil
}

// GetDeadLetter returns the record of a call id, its body loaded.
func (q *Queue) GetDeadLetter(ctx context.Context, callID string) (queue.DeadLetter, error) {
	m, err := q.lastDead(ctx, callID)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	var d queue.DeadLetter
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return d, err
	}
	if err := q.loadBody(ctx, &d.Message); err != nil {
		return d, fmt.Errorf("%w: the dead letter's body: %v", queue.ErrUnavailable, err)
	}
	return d, nil
}

// DeleteDeadLetter removes every record of a call id, and its stored body.
func (q *Queue) DeleteDeadLetter(ctx context.Context, callID string) error {
	m, err := q.lastDead(ctx, callID)
	if err != nil {
		return err
	}
	var d queue.DeadLetter
	json.Unmarshal(m.Data, &d)
	if err := q.dlq.Purge(ctx, jetstream.WithPurgeSubject(dlqSubj+"."+callID)); err != nil {
		return err
	}
	q.dropBody(ctx, d.Message.BodyRef)
	return nil
}

// Redrive queues the dead letter's call again under its call id (a new
// message id, so the queue does not take it for a repeat of the first
// publish) and removes the dead letter, keeping its stored body.
func (q *Queue) Redrive(ctx context.Context, callID string, now time.Time) (queue.DeadLetter, error) {
	raw, err := q.lastDead(ctx, callID)
	if err != nil {
		return queue.DeadLetter{}, err
	}
	var d queue.DeadLetter
	if err := json.Unmarshal(raw.Data, &d); err != nil {
		return d, err
	}
	m := d.Message
	m.Attempt, m.LastStatus, m.LastError = 0, 0, ""
	m.NotBefore = time.Time{}
	m.Enqueued = now.UTC()
	m.Redrives++
	if err := q.Enqueue(ctx, m); err != nil {
		return d, err
	}
	if err := q.dlq.Purge(ctx, jetstream.WithPurgeSubject(dlqSubj+"."+callID)); err != nil {
		q.opts.Logger.Warn("a redriven dead letter was not removed", "call", callID, "err", err)
	}
	return d, nil
}
