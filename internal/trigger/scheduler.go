package trigger

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/queue"
)

// Scheduler fires due triggers into the async queue. Several schedulers
// (one per gateway) may run against the same store and queue: each firing
// is claimed once.
type Scheduler struct {
	Store Store
	Queue queue.Queue
	// Spec reports whether the target function exists.
	Spec func(namespace, name string) (function.Function, bool)
	// Record, if set, is given the record of each queued firing.
	Record func(calls.Record)
	// Tick is how often triggers are looked at (default 1s); Grace is the
	// missed-fire bound (default 1h).
	Tick   time.Duration
	Grace  time.Duration
	Logger *slog.Logger
	Now    func() time.Time

	next map[string]planned
}

// planned is the next scheduled time of a trigger as last computed.
type planned struct {
	version string // schedule and creation time it was computed for
	at      time.Time
}

// Run fires triggers until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	if s.Tick == 0 {
		s.Tick = time.Second
	}
	if s.Grace == 0 {
		s.Grace = time.Hour
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.next = map[string]planned{}
	t := time.NewTicker(s.Tick)
	defer t.Stop()
	for {
		s.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass looks at every trigger once.
func (s *Scheduler) pass(ctx context.Context) {
	list, err := s.Store.List(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.Logger.Warn("cannot list triggers; will retry", "err", err)
		}
		return
	}
	now := s.Now()
	seen := map[string]bool{}
	for _, t := range list {
		key := t.Namespace + "/" + t.Name
		seen[key] = true
		version := t.Schedule + "|" + t.Created.String()
		if p, ok := s.next[key]; ok && p.version == version && now.Before(p.at) {
			continue
		}
		next, err := s.handle(ctx, t, now)
		if err != nil {
			s.Logger.Warn("trigger not handled; will retry", "trigger", key, "err", err)
			continue
		}
		s.next[key] = planned{version: version, at: next}
	}
	for key := range s.next {
		if !seen[key] {
			delete(s.next, key)
		}
	}
}

// handle fires what is due of one trigger and returns its next time.
func (s *Scheduler) handle(ctx context.Context, t Trigger, now time.Time) (time.Time, error) {
	sched, err := Parse(t.Schedule)
	if err != nil {
		return time.Time{}, err
	}
	last, rev, err := s.Store.LastFired(ctx, t.Namespace, t.Name)
	if err != nil {
		return time.Time{}, err
	}
	if last.Before(t.Created) {
		last = t.Created // a new (or re-created) trigger starts from its creation
	}
	latest, fire, skipped, next := Due(sched, last, now, s.Grace)
	if latest.IsZero() {
		return next, nil
	}
	if skipped > 0 {
		s.Logger.Warn("trigger missed scheduled times (nimbus was down); they are skipped, not caught up",
			"trigger", t.Namespace+"/"+t.Name, "skipped", skipped, "grace", s.Grace)
	}
	if fire {
		if err := s.fire(ctx, t, latest, now); err != nil {
			return time.Time{}, err
		}
	}
	err = s.Store.SetLastFired(ctx, t.Namespace, t.Name, latest, rev)
	if err != nil && !errors.Is(err, ErrConflict) { // a conflict: another scheduler did it
		return time.Time{}, err
	}
	return next, nil
}

// fire queues the invocation of a scheduled time, once: its call id is
// claimed in the queue's idempotency window, and the queue drops a repeated
// message id.
func (s *Scheduler) fire(ctx context.Context, t Trigger, at, now time.Time) error {
	id := CallID(t.Namespace, t.Name, at)
	key := "trigger/" + id
	_, claimed, queued, err := s.Queue.Claim(ctx, key, id)
	if err != nil {
		return err
	}
	if !claimed && queued {
		return nil // fired already (another gateway, or before a restart)
	}
	path := t.Path
	if path == "" {
		path = "/"
	}
	hdr := http.Header{}
	ct := t.ContentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	hdr.Set("Content-Type", ct)
	hdr.Set("X-Call-Id", id)
	hdr.Set("X-Nimbus-Trigger", t.Name)
	hdr.Set("X-Nimbus-Scheduled-Time", at.UTC().Format(time.RFC3339))
	m := queue.Message{CallID: id, Namespace: t.Namespace, Function: t.Function, Method: http.MethodPost, Path: path,
		Header: hdr, Body: []byte(t.Body), Enqueued: now.UTC()}
	if _, ok := s.Spec(t.Namespace, t.Function); !ok {
		// Nothing would consume it: record why, where users look.
		err := s.Queue.DeadLetter(ctx, queue.DeadLetter{CallID: id, Namespace: t.Namespace, Function: t.Function,
			Error: "trigger " + t.Name + " fired, but function " + t.Function + " does not exist", Enqueued: m.Enqueued, LastTry: m.Enqueued, Message: m})
		if err != nil {
			return err
		}
		return s.Queue.Queued(ctx, key)
	}
	if err := s.Queue.Enqueue(ctx, m); err != nil {
		return err
	}
	if s.Record != nil {
		s.Record(calls.Record{CallID: id, Namespace: t.Namespace, Function: t.Function, Mode: calls.Async, State: calls.Queued,
			Start: m.Enqueued, Updated: m.Enqueued})
	}
	return s.Queue.Queued(ctx, key)
}
