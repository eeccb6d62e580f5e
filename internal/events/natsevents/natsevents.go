// Package natsevents keeps the event gateway's configuration in a JetStream
// KV bucket, with an in-memory snapshot kept current by a watch (and by this
// process's own writes, at once).
package natsevents

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/events"
)

var _ events.Store = (*Store)(nil)

// Store is an events.Store on a KV bucket; keys are SPACE.KIND.base64url(ID).
type Store struct {
	kv jetstream.KeyValue

	mu   sync.RWMutex
	revs map[string]uint64 // key → revision applied
	snap *events.Config    // replaced, never mutated, on change

	stop context.CancelFunc
}

// Open creates or binds the bucket, loads it and starts watching it.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "nimbus_events", Description: "event gateway configuration: event types, functions, subscriptions, CORS",
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("events bucket: %w", err)
	}
	s := &Store{kv: kv, revs: map[string]uint64{}, snap: emptyConfig()}
	wctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("events bucket watch: %w", err)
	}
	loaded := make(chan struct{})
	go func() {
		defer w.Stop()
		initial := true
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the end of the initial values
					if initial {
						close(loaded)
						initial = false
					}
					continue
				}
				deleted := e.Operation() != jetstream.KeyValuePut
				s.apply(e.Key(), e.Value(), e.Revision(), deleted)
			}
		}
	}()
	select {
	case <-loaded:
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
	if err := s.migrate(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("events bucket: rewriting keys of the earlier form: %w", err)
	}
	return s, nil
}

// Close stops the watch.
func (s *Store) Close() { s.stop() }

func emptyConfig() *events.Config {
	return &events.Config{EventTypes: map[string]events.EventType{}, Functions: map[string]events.Function{},
		Subscriptions: map[string]events.Subscription{}, CORS: map[string]events.CORS{}}
}

// key is "s.B64(SPACE).KIND.B64(ID)": a space may hold dots (team.a), which
// separate a key's tokens. Keys of the earlier form "SPACE.KIND.B64(ID)",
// from when spaces were DNS labels, are read too and rewritten at Open.
func key(space, kind, id string) string {
	b := base64.RawURLEncoding
	return "s." + b.EncodeToString([]byte(space)) + "." + kind + "." + b.EncodeToString([]byte(id))
}

// parseKey reads either form of key.
func parseKey(k string) (space, kind, id string, old bool, ok bool) {
	b := base64.RawURLEncoding
	if rest, isNew := strings.CutPrefix(k, "s."); isNew {
		parts := strings.SplitN(rest, ".", 3)
		if len(parts) != 3 {
			return "", "", "", false, false
		}
		sp, err1 := b.DecodeString(parts[0])
		raw, err2 := b.DecodeString(parts[2])
		return string(sp), parts[1], string(raw), false, err1 == nil && err2 == nil
	}
	parts := strings.SplitN(k, ".", 3)
	if len(parts) != 3 {
		return "", "", "", false, false
	}
	raw, err := b.DecodeString(parts[2])
	return parts[0], parts[1], string(raw), true, err == nil
}

// migrate rewrites keys of the earlier form.
func (s *Store) migrate(ctx context.Context) error {
	s.mu.RLock()
	var olds []string
	for k := range s.revs {
		if _, _, _, old, ok := parseKey(k); ok && old {
			olds = append(olds, k)
		}
	}
	s.mu.RUnlock()
	for _, k := range olds {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		space, kind, id, _, _ := parseKey(k)
		nk := key(space, kind, id)
		if rev, err := s.kv.Create(ctx, nk, e.Value()); err == nil {
			s.apply(nk, e.Value(), rev, false)
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		if err := s.kv.Delete(ctx, k); err != nil {
			return err
		}
		s.apply(k, nil, e.Revision()+1, true)
	}
	return nil
}

// apply puts a change into a new snapshot, unless an as new one is there.
func (s *Store) apply(k string, value []byte, rev uint64, deleted bool) {
	space, kind, id, oldForm, ok := parseKey(k)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revs[k] >= rev {
		return
	}
	s.revs[k] = rev
	if oldForm && deleted {
		if _, moved := s.revs[key(space, kind, id)]; moved {
			return // rewritten under the new form: the value stays
		}
	}
	old := s.snap
	next := &events.Config{EventTypes: old.EventTypes, Functions: old.Functions, Subscriptions: old.Subscriptions, CORS: old.CORS}
	mk := events.Key(space, id)
	switch kind {
	case events.KindEventTypes:
		next.EventTypes = change(old.EventTypes, mk, value, deleted)
	case events.KindFunctions:
		next.Functions = change(old.Functions, mk, value, deleted)
	case events.KindSubscriptions:
		next.Subscriptions = change(old.Subscriptions, mk, value, deleted)
	case events.KindCORS:
		next.CORS = change(old.CORS, mk, value, deleted)
	}
	s.snap = next
}

// change returns a copy of m with k set to value decoded, or removed.
func change[T any](m map[string]T, k string, value []byte, deleted bool) map[string]T {
	out := make(map[string]T, len(m)+1)
	for kk, v := range m {
		out[kk] = v
	}
	if deleted {
		delete(out, k)
		return out
	}
	var v T
	if json.Unmarshal(value, &v) == nil {
		out[k] = v
	}
	return out
}

// Snapshot returns the current configuration; callers must not modify it.
func (s *Store) Snapshot() *events.Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap
}

// Create stores a new value (compare-and-set on absence).
func (s *Store) Create(ctx context.Context, space, kind, id string, value []byte) error {
	k := key(space, kind, id)
	rev, err := s.kv.Create(ctx, k, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return events.ErrExists
	}
	if err != nil {
		return err
	}
	s.apply(k, value, rev, false)
	return nil
}

// Update replaces an existing value.
func (s *Store) Update(ctx context.Context, space, kind, id string, value []byte) error {
	k := key(space, kind, id)
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.ErrNotFound
	}
	if err != nil {
		return err
	}
	rev, err := s.kv.Update(ctx, k, value, e.Revision())
	if err != nil {
		return err
	}
	s.apply(k, value, rev, false)
	return nil
}

// Delete removes a value.
func (s *Store) Delete(ctx context.Context, space, kind, id string) error {
	k := key(space, kind, id)
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err != nil {
		return err
	}
	// The delete marker's revision is the next one; the watch confirms it.
	s.apply(k, nil, e.Revision()+1, true)
	return nil
}
