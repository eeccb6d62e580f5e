package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

// DefaultDataDir is $XDG_DATA_HOME/nimbus, else ~/.local/share/nimbus.
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "nimbus")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "nimbus")
	}
	return filepath.Join(home, ".local", "share", "nimbus")
}

// adminToken reads the token, creating it (mode 0600) on first start.
func adminToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				os.Chmod(path, 0o600)
			}
			return t, false, nil
		}
		return "", false, fmt.Errorf("%s is too short to be an admin token: delete it to get a new one", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token = hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("create admin token: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(token + "\n"); err != nil {
		return "", false, err
	}
	return token, true, f.Sync()
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
