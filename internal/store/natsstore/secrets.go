package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/store"
)

const secretsBucket = "nimbus_secrets"

// PutSecret creates or updates a secret.
func (s *Store) PutSecret(ctx context.Context, namespace, name string, value []byte, create bool) error {
	kv := s.secrets
	key := kvKey(namespace, name)
	if create {
		_, err := kv.Create(ctx, key, value)
		return wrap(err)
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return wrap(err)
	}
	if _, err := kv.Update(ctx, key, value, e.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			return fmt.Errorf("%w: secret %s changed concurrently", store.ErrConflict, key)
		}
		return wrap(err)
	}
	return nil
}

// SecretValue returns a secret's value.
func (s *Store) SecretValue(ctx context.Context, namespace, name string) ([]byte, error) {
	e, err := s.secrets.Get(ctx, kvKey(namespace, name))
	if err != nil {
		return nil, wrap(err)
	}
	return e.Value(), nil
}

// ListSecrets lists names, never values.
func (s *Store) ListSecrets(ctx context.Context, namespace string) ([]store.SecretInfo, error) {
	out := []store.SecretInfo{}
	err := current(ctx, s.secrets, namespace, true, func(e jetstream.KeyValueEntry) error {
		ns, name, _ := strings.Cut(e.Key(), ".")
		out = append(out, store.SecretInfo{Namespace: ns, Name: name, Updated: e.Created()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out, nil
}

// DeleteSecret removes a secret.
func (s *Store) DeleteSecret(ctx context.Context, namespace, name string) error {
	key := kvKey(namespace, name)
	if _, err := s.secrets.Get(ctx, key); err != nil {
		return wrap(err)
	}
	return wrap(s.secrets.Purge(ctx, key))
}
