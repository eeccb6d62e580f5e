package process

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroups puts every instance in a cgroup (v2) of its own, under one
// cgroup per driver, so that stopping an instance kills every process it
// started — children that left its process group with setsid included —
// through cgroup.kill, which no process can escape.
//
// A guard process outlives nimbus to do the same if nimbus is killed with
// SIGKILL: it holds a pipe from nimbus, and when the pipe closes it writes
// cgroup.kill on the driver's cgroup, which kills every instance's
// processes at once, and removes the emptied cgroups.
//
// The driver's cgroup is PREFIX-PID, PREFIX named after the state dir: a
// nimbus started again on the same state while the guard of a killed one
// still tears its cgroup down must not share it (the guard would kill the
// new instances and remove their cgroups). Earlier runs' cgroups of the
// same prefix are killed and removed at start.
type cgroups struct {
	root  string   // the driver's cgroup, e.g. /sys/fs/cgroup/nimbus-1a2b3c4d5e6f-4242
	guard *os.File // the write end of the guard's pipe
	cmd   *exec.Cmd
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted and the
// calling process's cgroup in it.
func cgroup2Mount() (mount, self string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				mount = fields[4]
			}
		}
		if mount != "" {
			break
		}
	}
	if mount == "" {
		return "", "", errors.New("no cgroup v2 hierarchy is mounted")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return mount, rest, nil
		}
	}
	return mount, "/", nil
}

// openCgroups removes what earlier runs left of cgroups named PREFIX-*,
// creates the driver's cgroup PREFIX-PID below the calling process's own,
// checks that a process can be started into a child of it, and starts the
// guard. It fails where cgroups cannot be used (no cgroup v2, not root, an
// old kernel): the driver then falls back to process groups and says so.
func openCgroups(prefix string) (*cgroups, error) {
	mount, self, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	parent := filepath.Join(mount, self)
	earlier, _ := filepath.Glob(filepath.Join(parent, prefix+"-*"))
	for _, p := range earlier {
		os.WriteFile(filepath.Join(p, "cgroup.kill"), []byte("1"), 0) // the whole tree at once
		(&cgroups{root: p}).reap()
		os.Remove(p)
	}
	root := filepath.Join(parent, fmt.Sprintf("%s-%d", prefix, os.Getpid()))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", root, err)
	}
	c := &cgroups{root: root}
	// A probe: start a process into a child cgroup, as instances will be.
	probe, err := c.create("probe")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: probe.fd}
	runErr := cmd.Run()
	probe.kill()
	if runErr != nil {
		return nil, fmt.Errorf("start a process into a cgroup: %w", runErr)
	}
	if err := c.startGuard(); err != nil {
		return nil, err
	}
	return c, nil
}

// startGuard starts the process that kills every instance if nimbus dies
// without stopping them. It runs in a session of its own and is not killed
// with nimbus (no parent-death signal).
func (c *cgroups) startGuard() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// When the pipe closes: kill everything, then remove the emptied
	// cgroups (they empty as the killed processes exit).
	script := `cat >/dev/null; echo 1 > "$0/cgroup.kill"
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  for g in "$0"/*/; do [ -d "$g" ] && rmdir "$g" 2>/dev/null; done
  rmdir "$0" 2>/dev/null && exit 0
  sleep 0.25
done`
	cmd := exec.Command("/bin/sh", "-c", script, c.root)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start the cgroup guard: %w", err)
	}
	r.Close()
	c.guard, c.cmd = w, cmd
	return nil
}

// close stops the guard (which then kills what is left in the driver's
// cgroup) and removes the driver's cgroup.
func (c *cgroups) close() {
	if c.guard != nil {
		c.guard.Close()
		c.cmd.Wait()
	}
	c.reap()
	os.Remove(c.root)
}

// cgroup is one instance's cgroup, open for starting processes into.
type cgroup struct {
	path string
	fd   int
}

// create makes the cgroup of one instance.
func (c *cgroups) create(id string) (*cgroup, error) {
	p := filepath.Join(c.root, id)
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("open cgroup %s: %w", p, err)
	}
	return &cgroup{path: p, fd: fd}, nil
}

// kill kills every process in the cgroup, waits (up to 5s) until it is
// empty, and removes it. It is safe to call more than once.
func (g *cgroup) kill() error {
	if g.fd >= 0 {
		syscall.Close(g.fd)
		g.fd = -1
	}
	return killCgroup(g.path)
}

func killCgroup(p string) error {
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// ENODEV: the cgroup was removed between the open and the write (its
	// instance's other stop path got there first).
	if err := os.WriteFile(filepath.Join(p, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("kill cgroup %s: %w", p, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for delay := time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		err := os.Remove(p)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still holds processes after cgroup.kill: %w", p, err)
		}
		time.Sleep(delay)
	}
}

// reap kills and removes every instance cgroup left in the driver's.
func (c *cgroups) reap() error {
	entries, err := os.ReadDir(c.root)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			if err := killCgroup(filepath.Join(c.root, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// cgroupPath is the instance's cgroup, "" without one.
func (l *launch) cgroupPath() string {
	if l.cg == nil {
		return ""
	}
	return l.cg.path
}

// cgroupCPU reads the CPU time used in a cgroup (cpu.stat's usage_usec).
func cgroupCPU(path string) (time.Duration, error) {
	if path == "" {
		return 0, errors.New("the CPU an instance uses is measured only in a cgroup (nimbus as root, cgroup v2)")
	}
	b, err := os.ReadFile(filepath.Join(path, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu.stat of %s: %w", path, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("cpu.stat of %s has no usage_usec", path)
}
