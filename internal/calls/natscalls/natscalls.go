// Package natscalls keeps call records in a JetStream stream: one message
// per batch, retained for a bounded age and size (oldest dropped first).
package natscalls

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/calls"
)

var (
	_ calls.Sink   = (*Stream)(nil)
	_ calls.Source = (*Stream)(nil)
)

const (
	streamName = "NIMBUS_CALLS"
	subject    = "nimbus.calls"
)

// Options bound the stream.
type Options struct {
	MaxAge   time.Duration // default 24h
	MaxBytes int64         // default 256 MiB
	Replicas int
}

// Stream is the call-record stream.
type Stream struct {
	js jetstream.JetStream
	s  jetstream.Stream
}

// Open creates or binds the stream.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Stream, error) {
	if o.MaxAge == 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 256 << 20
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: streamName, Description: "call records, in batches", Subjects: []string{subject},
		Storage: jetstream.FileStorage, Replicas: o.Replicas, MaxAge: o.MaxAge, MaxBytes: o.MaxBytes,
		Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("call-record stream: %w", err)
	}
	return &Stream{js: js, s: s}, nil
}

// Append stores one batch and returns once JetStream has it.
func (s *Stream) Append(ctx context.Context, batch []calls.Record) error {
	b, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	_, err = s.js.Publish(ctx, subject, b)
	return err
}

// Follow replays every kept batch, then new ones as they are stored.
func (s *Stream) Follow(ctx context.Context, handle func([]calls.Record)) error {
	cons, err := s.s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("follow call records: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var batch []calls.Record
		if json.Unmarshal(msg.Data(), &batch) == nil {
			handle(batch)
		}
	})
	if err != nil {
		return fmt.Errorf("follow call records: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}
