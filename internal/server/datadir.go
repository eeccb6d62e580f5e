package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Files nimbus keeps in its data dir besides JetStream's.
const (
	TokenFile = "admin-token" // the admin credential, mode 0600
	URLFile   = "url"         // where the running nimbus listens
	OwnerFile = "owner-id"    // tells this nimbus's containers from others' on a shared engine
	lockFile  = "lock"
)

// DefaultDataDir is $XDG_DATA_HOME/nimbus, else /var/lib/nimbus for root
// (functions, running as users of their own, must pass through every
// directory above their own, and a root's home is private), else
// ~/.local/share/nimbus.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "nimbus")
	}
	if os.Geteuid() == 0 {
		return "/var/lib/nimbus"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "nimbus")
	}
	return filepath.Join(home, ".local", "share", "nimbus")
}

// adminToken reads the token, creating it (mode 0600) on first start. A
// token file that is a symlink or not a regular file, holds a byte that is
// not printable ASCII, or is under 32 characters is refused with the fix:
// each would make the credential guessable or not the one meant.
func adminToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, TokenFile)
	fi, err := os.Lstat(path)
	if err == nil {
		return readToken(path, fi)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token = hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("create admin token: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(token + "\n"); err != nil {
		return "", false, err
	}
	return token, true, f.Sync()
}

// MinTokenLength is the shortest admin token nimbus accepts.
const MinTokenLength = 32

func readToken(path string, fi os.FileInfo) (string, bool, error) {
	fix := "delete it and restart nimbus for a new one"
	if fi.Mode()&os.ModeSymlink != 0 {
		return "", false, fmt.Errorf("%s is a symlink: nimbus reads its admin token only from a regular file in its data dir; replace the link with the file itself, or %s", path, fix)
	}
	if !fi.Mode().IsRegular() {
		return "", false, fmt.Errorf("%s is not a regular file: %s", path, fix)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	b := make([]byte, 4097)
	n, _ := io.ReadFull(f, b)
	if n > 4096 {
		return "", false, fmt.Errorf("%s is over 4 KiB, not an admin token: %s", path, fix)
	}
	t, err := checkToken(path, b[:n], fix)
	if err != nil {
		return "", false, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		os.Chmod(path, 0o600)
	}
	return t, false, nil
}

// checkToken reads a token out of a file's bytes: one line of printable
// ASCII, at least MinTokenLength long.
func checkToken(path string, b []byte, fix string) (string, error) {
	t := strings.TrimRight(string(b), "\r\n")
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("%s holds a byte that is not printable ASCII (%q at %d): write the token as one line of printable characters, or %s", path, c, i, fix)
		}
	}
	if len(t) < MinTokenLength {
		return "", fmt.Errorf("%s holds a token of %d characters, under the %d nimbus requires: write a longer one (e.g. openssl rand -hex 32), or %s", path, len(t), MinTokenLength, fix)
	}
	return t, nil
}

// tokenFromFile reads the admin token from path, --admin-token-file: a
// Secret every replica mounts (Kubernetes makes it a symlink into the
// Secret's current data, which is followed).
func tokenFromFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	defer f.Close()
	b := make([]byte, 4097)
	n, _ := io.ReadFull(f, b)
	if n > 4096 {
		return "", fmt.Errorf("--admin-token-file %s is over 4 KiB, not an admin token", path)
	}
	return checkToken(path, b[:n], "fix the file (--admin-token-file)")
}

// lockDataDir makes sure one nimbus at a time uses a data dir.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another nimbus: stop it, or give this one --data-dir", dir)
	}
	return func() { f.Close() }, nil
}

// ownerID reads this data dir's owner id, creating it on first start.
func ownerID(dir string) (string, error) {
	path := filepath.Join(dir, OwnerFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	raw := make([]byte, 8)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	return id, os.WriteFile(path, []byte(id+"\n"), 0o600)
}
