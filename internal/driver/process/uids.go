package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// UIDRange is the range of user ids functions run as: each function gets
// one of its own, the same across restarts, and its group id is the same
// number. No /etc/passwd entry is needed.
type UIDRange struct{ First, Last uint32 }

// DefaultUIDs is 700000-799999: far above ordinary users and the usual
// subordinate ranges of user namespaces (/etc/subuid starts at 100000).
var DefaultUIDs = UIDRange{700000, 799999}

// ParseUIDRange reads "FIRST-LAST".
func ParseUIDRange(s string) (UIDRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if !ok || err1 != nil || err2 != nil || first == 0 || last < first {
		return UIDRange{}, fmt.Errorf("%q is not a range of user ids such as 700000-799999 (above 0, first not above last)", s)
	}
	return UIDRange{uint32(first), uint32(last)}, nil
}

// uids hands out one uid per function and remembers them in a file in the
// state directory, so a function keeps its uid (and can read the files its
// earlier instances wrote) across restarts. Uids are never reused.
type uids struct {
	path string
	r    UIDRange
	mu   sync.Mutex
	m    map[string]uint32 // function key → uid
}

func openUIDs(dir string, r UIDRange) (*uids, error) {
	u := &uids{path: filepath.Join(dir, "uids.json"), r: r, m: map[string]uint32{}}
	b, err := os.ReadFile(u.path)
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &u.m); err != nil {
		return nil, fmt.Errorf("%s is not a uid table (%v): remove it to start one afresh", u.path, err)
	}
	return u, nil
}

// get returns the function's uid, allocating the next free one if it has
// none.
func (u *uids) get(key string) (uint32, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if id, ok := u.m[key]; ok {
		return id, nil
	}
	used := make(map[uint32]bool, len(u.m))
	for _, id := range u.m {
		used[id] = true
	}
	for id := u.r.First; ; id++ {
		if !used[id] {
			u.m[key] = id
			if err := u.save(); err != nil {
				delete(u.m, key)
				return 0, err
			}
			return id, nil
		}
		if id == u.r.Last {
			return 0, fmt.Errorf("every user id of %d-%d is taken: give nimbus a larger range", u.r.First, u.r.Last)
		}
	}
}

// save writes the table atomically (a temporary file renamed over it).
func (u *uids) save() error {
	b, _ := json.Marshal(u.m)
	tmp := u.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, u.path)
}
