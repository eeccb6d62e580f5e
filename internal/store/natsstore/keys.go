package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/store"
)

const keysBucket = "nimbus_keys"

// CreateKey stores a new access key under its id.
func (s *Store) CreateKey(ctx context.Context, k store.AccessKey) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	_, err = s.keys.Create(ctx, k.ID, b)
	return wrap(err)
}

// Key returns an access key with its secret.
func (s *Store) Key(ctx context.Context, id string) (store.AccessKey, error) {
	e, err := s.keys.Get(ctx, id)
	if err != nil {
		return store.AccessKey{}, wrap(err)
	}
	var k store.AccessKey
	if err := json.Unmarshal(e.Value(), &k); err != nil {
		return store.AccessKey{}, fmt.Errorf("decode key %s: %w", id, err)
	}
	return k, nil
}

// ListKeys returns every key, secrets blanked.
func (s *Store) ListKeys(ctx context.Context) ([]store.AccessKey, error) {
	lister, err := s.keys.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return []store.AccessKey{}, nil
		}
		return nil, wrap(err)
	}
	out := []store.AccessKey{}
	for id := range lister.Keys() {
		k, err := s.Key(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		k.Secret = ""
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeleteKey removes an access key.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	if _, err := s.keys.Get(ctx, id); err != nil {
		return wrap(err)
	}
	return wrap(s.keys.Purge(ctx, id))
}
