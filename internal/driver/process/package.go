package process

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"nimbus/internal/archive"
)

// packageCache unpacks each package once per run into a private directory that
// the function's user can read but not write.
type packageCache struct {
	root string
	mu   sync.Mutex
	dirs map[string]*unpacked
}

type unpacked struct {
	once sync.Once
	path string
	err  error
}

func newPackageCache() (*packageCache, error) {
	root, err := os.MkdirTemp("", "nimbus-packages-")
	if err != nil {
		return nil, err
	}
	// Readable by the unprivileged function user; writable only by nimbus.
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	return &packageCache{root: root, dirs: map[string]*unpacked{}}, nil
}

func (c *packageCache) remove() error { return os.RemoveAll(c.root) }

// dir returns the directory holding the unpacked package, unpacking it first if
// this is its first use. Concurrent callers share one unpack.
func (c *packageCache) dir(ctx context.Context, digest string, open func(context.Context, string) (io.ReadCloser, error)) (string, error) {
	c.mu.Lock()
	u := c.dirs[digest]
	if u == nil {
		u = &unpacked{}
		c.dirs[digest] = u
	}
	c.mu.Unlock()
	u.once.Do(func() {
		if open == nil {
			u.err = errors.New("no package source")
			return
		}
		u.path, u.err = c.unpack(ctx, digest, open)
	})
	if u.err != nil {
		c.mu.Lock()
		delete(c.dirs, digest) // let a later start try again
		c.mu.Unlock()
	}
	return u.path, u.err
}

func (c *packageCache) unpack(ctx context.Context, digest string, open func(context.Context, string) (io.ReadCloser, error)) (string, error) {
	rc, err := open(ctx, digest)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.MkdirTemp(c.root, "unpack-")
	if err != nil {
		return "", err
	}
	if err := archive.Unpack(rc, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(c.root, strings.TrimPrefix(digest, "sha256:"))
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return final, nil
}
