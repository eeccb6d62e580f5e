package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"nimbus/internal/archive"
	"nimbus/internal/function"
)

// workspace is one function's private directory, RootDir/NS/NAME. It holds
// the function's unpacked packages (pkg-HEX, each once per digest), its
// instances' secrets (secrets-ID), and home and tmp, its HOME and TMPDIR:
// each owned by the function's user, mode 0700 (secrets 0500), so no other
// function can enter them. The directory itself stays nimbus's (root's),
// mode 0710 with the function's group: the function can pass through it
// but not rename, replace or add what is in it, so nothing nimbus does
// there as root (unpacking, writing secrets, removing) can be pointed
// elsewhere by a symbolic link the function made.
type workspace struct {
	d        *Driver
	key, dir string
	uid, gid int // -1: files keep nimbus's own user

	mu   sync.Mutex
	pkgs map[string]*unpacked
}

type unpacked struct {
	once  sync.Once
	path  string
	bytes int64
	err   error
}

// workspace returns (creating it) the directory of fn.
func (d *Driver) workspace(fn function.Function) (*workspace, error) {
	key := fn.Key()
	d.mu.Lock()
	defer d.mu.Unlock()
	if ws := d.spaces[key]; ws != nil {
		return ws, nil
	}
	ws := &workspace{d: d, key: key, dir: filepath.Join(d.opts.RootDir, fn.Namespace, fn.Name), uid: -1, gid: -1,
		pkgs: map[string]*unpacked{}}
	if d.uids != nil {
		id, err := d.uids.get(key)
		if err != nil {
			return nil, err
		}
		ws.uid, ws.gid = int(id), int(id)
	} else if d.cred != nil {
		ws.uid, ws.gid = int(d.cred.Uid), int(d.cred.Gid)
	}
	// The namespace directory only lets users through to their own
	// function's directory; it lists nothing to them.
	if err := os.MkdirAll(filepath.Dir(ws.dir), 0o711); err != nil {
		return nil, err
	}
	if err := os.Mkdir(ws.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if ws.uid >= 0 {
		if err := os.Lchown(ws.dir, os.Geteuid(), ws.gid); err != nil {
			return nil, err
		}
		if err := os.Chmod(ws.dir, 0o710); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{filepath.Join(ws.dir, "home"), filepath.Join(ws.dir, "tmp")} {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if err := ws.own(p); err != nil {
			return nil, err
		}
	}
	d.spaces[key] = ws
	return ws, nil
}

// own gives a path to the function's user.
func (ws *workspace) own(p string) error {
	if ws.uid < 0 {
		return nil
	}
	return os.Lchown(p, ws.uid, ws.gid)
}

// ownAll gives a tree that only root can reach yet to the function's user:
// every entry before the directory holding it, the root last, so that the
// function can enter no part of it while nimbus still works inside.
func (ws *workspace) ownAll(root string) error {
	if ws.uid < 0 {
		return nil
	}
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(paths) - 1; i >= 0; i-- { // a directory's entries come after it
		if err := os.Lchown(paths[i], ws.uid, ws.gid); err != nil {
			return err
		}
	}
	return nil
}

// pkg returns the directory of the unpacked package, unpacking it first if
// this is its first use by the function. Concurrent callers share one
// unpack; a failed one is tried again by the next start.
func (ws *workspace) pkg(ctx context.Context, digest string, open func(context.Context, string) (io.ReadCloser, error)) (string, error) {
	ws.mu.Lock()
	u := ws.pkgs[digest]
	if u == nil {
		u = &unpacked{}
		ws.pkgs[digest] = u
	}
	ws.mu.Unlock()
	u.once.Do(func() {
		var path string
		var n int64
		err := errors.New("no package source")
		if open != nil {
			path, n, err = ws.unpack(ctx, digest, open)
		}
		// Under the lock: prune and Forget read them without the Once.
		ws.mu.Lock()
		u.path, u.bytes, u.err = path, n, err
		ws.mu.Unlock()
	})
	if u.err != nil {
		ws.mu.Lock()
		delete(ws.pkgs, digest) // let a later start try again
		ws.mu.Unlock()
		return "", u.err
	}
	ws.prune(digest)
	return u.path, nil
}

// prune removes the function's other packages (earlier revisions) that no
// running instance uses.
func (ws *workspace) prune(keep string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for digest, u := range ws.pkgs {
		if digest == keep || u.path == "" || ws.d.inUse(u.path) {
			continue
		}
		os.RemoveAll(u.path)
		ws.d.unpacked.Add(-u.bytes)
		delete(ws.pkgs, digest)
	}
}

func (ws *workspace) unpack(ctx context.Context, digest string, open func(context.Context, string) (io.ReadCloser, error)) (string, int64, error) {
	rc, err := open(ctx, digest)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	tmp, err := os.MkdirTemp(ws.dir, ".unpack-")
	if err != nil {
		return "", 0, err
	}
	sum, err := archive.Unpack(rc, tmp, ws.d.opts.Package)
	if err != nil {
		os.RemoveAll(tmp)
		return "", 0, err
	}
	if total := ws.d.unpacked.Add(sum.Bytes); ws.d.opts.MaxUnpackedBytes > 0 && total > ws.d.opts.MaxUnpackedBytes {
		ws.d.unpacked.Add(-sum.Bytes)
		os.RemoveAll(tmp)
		return "", 0, fmt.Errorf("unpacked packages would take %d bytes, over the limit of %d for all functions together (--max-unpacked-bytes): delete functions no longer used, or raise the limit",
			total, ws.d.opts.MaxUnpackedBytes)
	}
	// tmp is 0700 root's (MkdirTemp) until ownAll gives it away, last.
	if err := os.Chmod(tmp, 0o700); err != nil {
		os.RemoveAll(tmp)
		ws.d.unpacked.Add(-sum.Bytes)
		return "", 0, err
	}
	if err := ws.ownAll(tmp); err != nil {
		os.RemoveAll(tmp)
		ws.d.unpacked.Add(-sum.Bytes)
		return "", 0, err
	}
	final := filepath.Join(ws.dir, "pkg-"+strings.TrimPrefix(digest, "sha256:"))
	os.RemoveAll(final) // a leftover of a crash mid-unpack
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		ws.d.unpacked.Add(-sum.Bytes)
		return "", 0, err
	}
	return final, sum.Bytes, nil
}

// writeSecrets puts each secret in a file of a directory of one instance:
// the directory mode 0500 and the files 0400, owned by the function's user,
// inside the function's private directory. The directory is root's until
// its files are written and given away.
func (ws *workspace) writeSecrets(id string, secrets map[string][]byte) (string, error) {
	dir := filepath.Join(ws.dir, "secrets-"+id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	for name, v := range secrets {
		p := filepath.Join(dir, name) // names are DNS labels: no separators
		if err := os.WriteFile(p, v, 0o400); err != nil {
			removeSecrets(dir)
			return "", fmt.Errorf("write secret %s: %w", name, err)
		}
		if err := ws.own(p); err != nil {
			removeSecrets(dir)
			return "", err
		}
	}
	if err := ws.own(dir); err != nil {
		removeSecrets(dir)
		return "", err
	}
	return dir, os.Chmod(dir, 0o500)
}

// removeSecrets deletes an instance's secrets directory (RemoveAll does not
// follow links, and the function cannot replace dir: its parent is root's).
func removeSecrets(dir string) {
	if dir == "" {
		return
	}
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		os.Chmod(dir, 0o700) // for a nimbus that is not root: 0500 blocks removing the files
	}
	os.RemoveAll(dir)
}

// Forget removes a deleted function's directory — its unpacked packages,
// secrets, home and temporary files — once its instances have stopped.
func (d *Driver) Forget(namespace, name string) error {
	key := function.Key(namespace, name)
	d.mu.Lock()
	ws := d.spaces[key]
	delete(d.spaces, key)
	d.mu.Unlock()
	if ws != nil {
		ws.mu.Lock()
		for _, u := range ws.pkgs {
			d.unpacked.Add(-u.bytes)
		}
		ws.mu.Unlock()
	}
	return os.RemoveAll(filepath.Join(d.opts.RootDir, namespace, name))
}

// clearRoot removes every function directory (at start, after a crash; at
// shutdown).
func (d *Driver) clearRoot() error {
	entries, err := os.ReadDir(d.opts.RootDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(d.opts.RootDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	d.spaces = map[string]*workspace{}
	d.mu.Unlock()
	d.unpacked.Store(0)
	return errors.Join(errs...)
}
