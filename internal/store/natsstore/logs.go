package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/store"
)

func logSubject(namespace, name string) string {
	return logsSubject + "." + namespace + "." + name
}

// AppendLog publishes the line without waiting for an acknowledgement: log
// lines must never slow a function down.
func (s *Store) AppendLog(_ context.Context, l store.LogLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: logSubject(l.Namespace, l.Function), Data: b}
	if l.ID != "" {
		// JetStream drops a message whose id it saw within the
		// stream's duplicate window (2 minutes).
		m.Header = nats.Header{jetstream.MsgIDHeader: []string{l.ID}}
	}
	return s.nc.PublishMsg(m)
}

// ReadLogs replays a function's lines from since with an ordered consumer.
func (s *Store) ReadLogs(ctx context.Context, namespace, name string, since time.Time, follow bool, fn func(store.LogLine) error) error {
	subj := logSubject(namespace, name)
	var last uint64
	if !follow {
		m, err := s.log.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return wrap(err)
		}
		if m.Time.Before(since) {
			return nil // nothing at or after since
		}
		last = m.Sequence
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := s.js.OrderedConsumer(ctx, logsStream, cfg)
	if err != nil {
		return wrap(err)
	}
	it, err := cons.Messages()
	if err != nil {
		return wrap(err)
	}
	defer it.Stop()
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return wrap(err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		if !follow && meta.Sequence.Stream > last {
			return nil
		}
		var l store.LogLine
		if err := json.Unmarshal(msg.Data(), &l); err == nil {
			if err := fn(l); err != nil {
				return err
			}
		}
		if !follow && (meta.Sequence.Stream >= last || meta.NumPending == 0) {
			return nil
		}
	}
}
