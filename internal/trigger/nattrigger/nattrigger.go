// Package nattrigger keeps triggers in a JetStream KV bucket: the spec under
// spec.NS.NAME, the last scheduled time handled under fired.NS.NAME
// (compare-and-set, so that one scheduler wins each time).
package nattrigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/trigger"
)

var _ trigger.Store = (*Store)(nil)

// Store is a trigger.Store on a KV bucket.
type Store struct {
	kv jetstream.KeyValue
}

// Open creates or binds the bucket.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "nimbus_triggers", Description: "cron triggers and when each last fired",
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("trigger bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

func specKey(ns, name string) string  { return "spec." + ns + "." + name }
func firedKey(ns, name string) string { return "fired." + ns + "." + name }

// Put creates or replaces a trigger. Re-creating a trigger under the same
// name keeps its last fired time.
func (s *Store) Put(ctx context.Context, t trigger.Trigger) (bool, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return false, err
	}
	if _, err := s.kv.Create(ctx, specKey(t.Namespace, t.Name), b); err == nil {
		return true, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, err
	}
	_, err = s.kv.Put(ctx, specKey(t.Namespace, t.Name), b)
	return false, err
}

// Get returns one trigger.
func (s *Store) Get(ctx context.Context, ns, name string) (trigger.Trigger, error) {
	e, err := s.kv.Get(ctx, specKey(ns, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return trigger.Trigger{}, trigger.ErrNotFound
	}
	if err != nil {
		return trigger.Trigger{}, err
	}
	var t trigger.Trigger
	err = json.Unmarshal(e.Value(), &t)
	return t, err
}

// List returns the triggers of a namespace ("" for all), by name.
func (s *Store) List(ctx context.Context, ns string) ([]trigger.Trigger, error) {
	filter := "spec.>"
	if ns != "" {
		filter = "spec." + ns + ".*"
	}
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := []trigger.Trigger{}
	for k := range lister.Keys() {
		parts := strings.SplitN(k, ".", 3)
		if len(parts) != 3 {
			continue
		}
		t, err := s.Get(ctx, parts[1], parts[2])
		if errors.Is(err, trigger.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Delete removes a trigger (its last fired time stays, so that re-creating it
// does not fire a time already fired).
func (s *Store) Delete(ctx context.Context, ns, name string) error {
	if _, err := s.Get(ctx, ns, name); err != nil {
		return err
	}
	return s.kv.Purge(ctx, specKey(ns, name))
}

// LastFired returns the last scheduled time handled.
func (s *Store) LastFired(ctx context.Context, ns, name string) (time.Time, uint64, error) {
	e, err := s.kv.Get(ctx, firedKey(ns, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, 0, nil
	}
	if err != nil {
		return time.Time{}, 0, err
	}
	var at time.Time
	if err := at.UnmarshalText(e.Value()); err != nil {
		return time.Time{}, 0, err
	}
	return at, e.Revision(), nil
}

// SetLastFired records at by compare-and-set on rev.
func (s *Store) SetLastFired(ctx context.Context, ns, name string, at time.Time, rev uint64) error {
	b, _ := at.UTC().MarshalText()
	var err error
	if rev == 0 {
		_, err = s.kv.Create(ctx, firedKey(ns, name), b)
	} else {
		_, err = s.kv.Update(ctx, firedKey(ns, name), b, rev)
	}
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return trigger.ErrConflict
		}
		return err
	}
	return nil
}
