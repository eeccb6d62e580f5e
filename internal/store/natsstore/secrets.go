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

func (s *Store) secretsKV(ctx context.Context) (jetstream.KeyValue, error) {
	if s.secrets != nil {
		return s.secrets, nil
	}
	return nil, fmt.Errorf("%w: secrets bucket not open", store.ErrUnavailable)
}

// PutSecret creates or updates a secret.
func (s *Store) PutSecret(ctx context.Context, namespace, name string, value []byte, create bool) error {
	kv, err := s.secretsKV(ctx)
	if err != nil {
		return err
	}
	key := kvKey(namespace, name)
	if create {
		_, err = kv.Create(ctx, key, value)
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
	kv, err := s.secretsKV(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, kvKey(namespace, name))
	if err != nil {
		return nil, wrap(err)
	}
	return e.Value(), nil
}

// ListSecrets lists names, never values.
func (s *Store) ListSecrets(ctx context.Context, namespace string) ([]store.SecretInfo, error) {
	kv, err := s.secretsKV(ctx)
	if err != nil {
		return nil, err
	}
	filter := ">"
	if namespace != "" {
		filter = namespace + ".*"
	}
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, wrap(err)
	}
	defer w.Stop()
	out := []store.SecretInfo{}
	for {
		select {
		case <-ctx.Done():
			return nil, wrap(ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("%w: watch closed", store.ErrUnavailable)
			}
			if e == nil {
				sort.Slice(out, func(i, j int) bool {
					return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
				})
				return out, nil
			}
			ns, name, _ := strings.Cut(e.Key(), ".")
			out = append(out, store.SecretInfo{Namespace: ns, Name: name, Updated: e.Created()})
		}
	}
}

// DeleteSecret removes a secret.
func (s *Store) DeleteSecret(ctx context.Context, namespace, name string) error {
	kv, err := s.secretsKV(ctx)
	if err != nil {
		return err
	}
	key := kvKey(namespace, name)
	if _, err := kv.Get(ctx, key); err != nil {
		return wrap(err)
	}
	return wrap(kv.Purge(ctx, key))
}
