package natsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"nimbus/internal/store"
)

// PutPackage spools r to a temporary file while hashing it, then stores it
// under its digest. Bytes already stored are not written again.
func (s *Store) PutPackage(ctx context.Context, r io.Reader) (store.PackageInfo, error) {
	tmp, err := os.CreateTemp("", "nimbus-pkg-*")
	if err != nil {
		return store.PackageInfo{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return store.PackageInfo{}, fmt.Errorf("read package: %w", err)
	}
	info := store.PackageInfo{Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}
	if _, err := s.StatPackage(ctx, info.Digest); err == nil {
		return info, nil
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return store.PackageInfo{}, err
	}
	if _, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: info.Digest}, tmp); err != nil {
		return store.PackageInfo{}, wrap(err)
	}
	return info, nil
}

// OpenPackage returns a reader of the package's bytes; the object store checks
// them against the digest it recorded as they are read.
func (s *Store) OpenPackage(ctx context.Context, digest string) (io.ReadCloser, error) {
	res, err := s.obs.Get(ctx, digest)
	if err != nil {
		return nil, wrap(err)
	}
	return res, nil
}

// StatPackage returns a stored package's size.
func (s *Store) StatPackage(ctx context.Context, digest string) (store.PackageInfo, error) {
	info, err := s.obs.GetInfo(ctx, digest)
	if err != nil {
		return store.PackageInfo{}, wrap(err)
	}
	return store.PackageInfo{Digest: digest, Size: int64(info.Size)}, nil
}
