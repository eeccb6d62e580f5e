package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A record names a process group nimbus started: "pid starttime". The start
// time (field 22 of /proc/PID/stat) tells a reused PID from ours.

func writeRecord(path string, pid int) error {
	st, err := startTime(pid)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, st)), 0o600)
}

func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces; fields after ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", errors.New("short /proc stat")
	}
	return f[19], nil // field 22 overall
}

// Reap cleans up after an earlier run that did not stop its instances (a
// kill -9): it kills every process left in the driver's cgroup, the process
// group of every record whose process is still the one nimbus started, and
// removes the records and every function directory (unpacked packages,
// secrets, temporary files).
func (d *Driver) Reap(ctx context.Context) error {
	entries, err := os.ReadDir(d.opts.StateDir)
	if err != nil {
		return err
	}
	var errs []error
	if d.cg != nil {
		if err := d.cg.reap(); err != nil {
			errs = append(errs, err)
		}
	}

	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		path := filepath.Join(d.opts.StateDir, e.Name())
		if err := reapOne(path); err != nil {
			errs = append(errs, err)
		}
		os.Remove(path)
	}
	if err := d.clearRoot(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func reapOne(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // its process has exited meanwhile
	}
	if err != nil {
		return err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return nil
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return nil
	}
	if st, err := startTime(pid); err == nil && st != f[1] {
		// The PID belongs to another process now, so our group is gone:
		// Linux does not reuse a PID while a process group has its id.
		return nil
	}
	// The leader is ours, or gone while its group may still hold children;
	// either way a group with this id can only be the one we started.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("reap process group %d: %w", pid, err)
	}
	return nil
}
