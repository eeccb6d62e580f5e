package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"nimbus/internal/store"
)

const versionsBucket = "nimbus_versions"

// VersionInfo returns a function's version counter and aliases.
func (s *Store) VersionInfo(ctx context.Context, ns, name string) (store.VersionInfo, uint64, error) {
	e, err := s.versions.Get(ctx, ns+"."+name)
	if err != nil {
		if err = wrap(err); errors.Is(err, store.ErrNotFound) {
			return store.VersionInfo{Namespace: ns, Function: name}, 0, nil
		}
		return store.VersionInfo{}, 0, err
	}
	var v store.VersionInfo
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return store.VersionInfo{}, 0, fmt.Errorf("decode the versions of %s/%s: %w", ns, name, err)
	}
	return v, e.Revision(), nil
}

// PutVersionInfo stores v if the stored revision is rev.
func (s *Store) PutVersionInfo(ctx context.Context, v store.VersionInfo, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	key := v.Namespace + "." + v.Function
	if rev == 0 {
		_, err = s.versions.Create(ctx, key, b)
		if err = wrap(err); errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: the versions of %s/%s were written meanwhile", store.ErrConflict, v.Namespace, v.Function)
		}
		return err
	}
	_, err = s.versions.Update(ctx, key, b, rev)
	if err = wrap(err); errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w: the versions of %s/%s were written meanwhile", store.ErrConflict, v.Namespace, v.Function)
	}
	return err
}

// DeleteVersionInfo removes a function's record.
func (s *Store) DeleteVersionInfo(ctx context.Context, ns, name string) error {
	err := wrap(s.versions.Purge(ctx, ns+"."+name))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
