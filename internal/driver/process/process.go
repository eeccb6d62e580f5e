// Package process is the default driver: each instance is a local process run
// from the function's unpacked package.
//
// Functions are kept apart (docs/runtime-contract.md): when nimbus runs as
// root, each function runs as a user id of its own (from a range, the same
// across restarts), and its unpacked package, secrets, home and temporary
// files live in a directory under the data dir that only that user can
// enter. Each instance runs in a cgroup of its own, so stopping it kills
// every process it started, and a guard process kills them all if nimbus
// itself is killed; where cgroups cannot be used, process groups and a
// parent-death signal do what they can. A record per process in the state
// directory lets the next start of nimbus kill whatever survived (Reap). A
// function's environment is its spec's env plus PORT and the NIMBUS_*
// variables — never nimbus's own environment.
package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"nimbus/internal/archive"
	"nimbus/internal/driver"
	"nimbus/internal/function"
)

var _ driver.Driver = (*Driver)(nil)

// DefaultPath is the PATH a function gets unless its env sets one.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// Options configure the driver.
type Options struct {
	// StateDir keeps one record per running process, for Reap, and the uid
	// table. Required.
	StateDir string
	// RootDir holds one private directory per function. Default: the
	// directory "functions" beside StateDir. When functions run as users of
	// their own, every directory above it must let others through (x).
	RootDir string
	// RunAs, if set, is the one user every function runs as (functions then
	// share it). Empty: a user id per function from UIDs when nimbus runs
	// as root, else nimbus's own user.
	RunAs string
	// UIDs are the user ids functions get. Default DefaultUIDs.
	UIDs UIDRange
	// StopGrace is how long Close waits for instances to exit after SIGTERM.
	StopGrace time.Duration
	// StdoutLimit is how much of a stdio function's output is held before
	// the response status is committed (see stdio.go). Default 1 MiB.
	StdoutLimit int
	// Package bounds one unpacked package; MaxUnpackedBytes bounds all
	// unpacked packages together (a start beyond it fails). Default 10 GiB.
	Package          archive.Limits
	MaxUnpackedBytes int64
	// NoCgroups keeps instances in process groups only.
	NoCgroups bool
	Logger    *slog.Logger
}

// Driver runs function instances as local processes.
type Driver struct {
	opts     Options
	cred     *syscall.Credential // the one user of every function; nil: per-function users, or ourselves
	uids     *uids               // per-function users, when root and RunAs is unset
	cg       *cgroups            // nil: process groups only
	cgErr    error               // why cgroups are off
	seq      atomic.Uint64
	boot     string
	unpacked atomic.Int64 // bytes of all unpacked packages

	mu     sync.Mutex
	live   map[string]stopper
	dirs   map[string]int // package directory → instances running from it
	spaces map[string]*workspace
	close  bool
}

type stopper interface {
	Stop(ctx context.Context) error
}

// New returns a driver. It creates StateDir and RootDir, and the driver's
// cgroup when cgroups can be used.
func New(o Options) (*Driver, error) {
	if o.StateDir == "" {
		return nil, errors.New("process driver: StateDir is required")
	}
	if o.RootDir == "" {
		o.RootDir = filepath.Join(filepath.Dir(filepath.Clean(o.StateDir)), "functions")
	}
	if o.StopGrace == 0 {
		o.StopGrace = 5 * time.Second
	}
	if o.StdoutLimit == 0 {
		o.StdoutLimit = 1 << 20
	}
	if o.UIDs == (UIDRange{}) {
		o.UIDs = DefaultUIDs
	}
	if o.MaxUnpackedBytes == 0 {
		o.MaxUnpackedBytes = 10 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.RootDir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(o.RootDir, 0o711); err != nil {
		return nil, err
	}
	d := &Driver{opts: o, live: map[string]stopper{}, dirs: map[string]int{}, spaces: map[string]*workspace{},
		boot: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	switch {
	case o.RunAs != "" || os.Geteuid() != 0:
		cred, err := credential(o.RunAs)
		if err != nil {
			return nil, err
		}
		d.cred = cred
	default:
		u, err := openUIDs(o.StateDir, o.UIDs)
		if err != nil {
			return nil, err
		}
		d.uids = u
	}
	if d.cred != nil || d.uids != nil {
		if err := reachable(o.RootDir); err != nil {
			return nil, err
		}
	}
	if o.NoCgroups {
		d.cgErr = errors.New("turned off")
	} else if os.Geteuid() != 0 {
		d.cgErr = errors.New("nimbus is not running as root")
	} else {
		abs, _ := filepath.Abs(o.StateDir)
		sum := sha256.Sum256([]byte(abs))
		d.cg, d.cgErr = openCgroups("nimbus-" + hex.EncodeToString(sum[:6]))
		if d.cgErr != nil {
			o.Logger.Warn("instances run in process groups only: a process that leaves its group (setsid) can outlive its instance", "err", d.cgErr)
		}
	}
	return d, nil
}

// reachable checks that every directory down to dir lets other users
// through, as functions running as users of their own must reach theirs.
func reachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("functions run as users of their own and must reach %s, but %s does not let other users through (mode %04o): "+
				"choose a --data-dir under a directory others can pass (such as /var/lib/nimbus), or chmod o+x %s", abs, p, fi.Mode().Perm(), p)
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}

// Isolation says how functions are kept apart, for nimbus up's banner.
func (d *Driver) Isolation() string {
	var who string
	switch {
	case d.uids != nil:
		who = fmt.Sprintf("each function runs as a user of its own (uids %d-%d)", d.opts.UIDs.First, d.opts.UIDs.Last)
	case d.opts.RunAs != "":
		who = "every function runs as user " + d.opts.RunAs + " (--run-as): functions share it and can reach each other's files"
	default:
		who = "functions run as nimbus's own user and share it (nimbus is not root): they can read each other's files and signal each other"
	}
	if d.cg != nil {
		return who + "; each instance in a cgroup of its own"
	}
	return who + "; instances in process groups only (no cgroups: " + d.cgErr.Error() + ")"
}

// credential picks the one user functions run as.
func credential(name string) (*syscall.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("process driver: user %q to run functions as: %w", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if uid == uint64(os.Geteuid()) {
		return nil, nil
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// Name is "process".
func (d *Driver) Name() string { return function.RuntimeProcess }

func (d *Driver) newID(fn function.Function) string {
	return fmt.Sprintf("%s-%s-%s%d", fn.Name, fn.Namespace, d.boot, d.seq.Add(1))
}

// launch is what an instance is started with.
type launch struct {
	id      string
	ws      *workspace
	dir     string // the unpacked package: the working directory
	cg      *cgroup
	secrets string
	env     []string
}

// attr is the SysProcAttr of each process of an instance: its own process
// group, killed with nimbus, the function's user, the instance's cgroup.
func (l *launch) attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if l.ws.uid >= 0 {
		a.Credential = &syscall.Credential{Uid: uint32(l.ws.uid), Gid: uint32(l.ws.gid), Groups: []uint32{}}
	}
	if l.cg != nil {
		a.UseCgroupFD, a.CgroupFD = true, l.cg.fd
	}
	return a
}

// release undoes what prepare made, once the instance has exited: every
// process left in its cgroup is killed, its secrets removed.
func (d *Driver) release(l *launch) {
	if l.cg != nil {
		if err := l.cg.kill(); err != nil {
			d.opts.Logger.Warn("an instance's cgroup could not be emptied", "instance", l.id, "err", err)
		}
	}
	removeSecrets(l.secrets)
	d.mu.Lock()
	if l.dir != "" {
		if d.dirs[l.dir]--; d.dirs[l.dir] <= 0 {
			delete(d.dirs, l.dir)
		}
	}
	delete(d.live, l.id)
	d.mu.Unlock()
}

func (d *Driver) inUse(dir string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dirs[dir] > 0
}

// prepare readies what an instance needs: the function's directory and
// package, its secrets, its cgroup.
func (d *Driver) prepare(ctx context.Context, spec driver.Spec) (*launch, error) {
	fn := spec.Function
	ws, err := d.workspace(fn)
	if err != nil {
		return nil, fmt.Errorf("%w: the function's directory: %w", driver.ErrStartFailed, err)
	}
	dir, err := ws.pkg(ctx, fn.Package, spec.OpenPackage)
	if err != nil {
		return nil, fmt.Errorf("%w: package %s: %w", driver.ErrStartFailed, fn.Package, err)
	}
	l := &launch{id: d.newID(fn), ws: ws}
	d.mu.Lock()
	if d.close {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: driver is shutting down", driver.ErrStartFailed)
	}
	l.dir = dir
	d.dirs[dir]++
	d.mu.Unlock()
	var extra []string
	if len(spec.Secrets) > 0 {
		if l.secrets, err = ws.writeSecrets(l.id, spec.Secrets); err != nil {
			d.release(l)
			return nil, fmt.Errorf("%w: secrets: %w", driver.ErrStartFailed, err)
		}
		extra = append(extra, "NIMBUS_SECRETS_DIR="+l.secrets)
	}
	if d.cg != nil {
		if l.cg, err = d.cg.create(l.id); err != nil {
			d.release(l)
			return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
		}
	}
	l.env = d.env(spec, l.id, ws, extra...)
	return l, nil
}

// Start starts one instance and waits until it is ready.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	fn := spec.Function
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	l, err := d.prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	var inst driver.Instance
	switch fn.Protocol {
	case function.ProtocolStdio:
		path, err := d.resolve(spec.Function.Command[0], l.env)
		if err != nil {
			d.release(l)
			return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
		}
		inst = newStdio(d, l, spec, path)
	case function.ProtocolLambda:
		inst, err = startLambda(ctx, d, l, spec)
		if err != nil {
			d.release(l)
			return nil, err
		}
	default:
		inst, err = startHTTP(ctx, d, l, spec)
		if err != nil {
			d.release(l)
			return nil, err
		}
	}
	d.mu.Lock()
	if d.close {
		d.mu.Unlock()
		inst.Stop(context.Background())
		d.release(l)
		return nil, fmt.Errorf("%w: driver is shutting down", driver.ErrStartFailed)
	}
	d.live[l.id] = inst
	d.mu.Unlock()
	go func() {
		<-inst.Done()
		d.release(l)
	}()
	return inst, nil
}

// Close stops every instance, waiting up to StopGrace for each to exit,
// then removes the function directories and the driver's cgroup.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	d.close = true
	all := make([]stopper, 0, len(d.live))
	for _, s := range d.live {
		all = append(all, s)
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, d.opts.StopGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() { s.Stop(ctx) })
	}
	wg.Wait()
	if d.cg != nil {
		d.cg.close()
	}
	return d.clearRoot()
}

// env builds a process's whole environment: nothing is inherited. HOME and
// TMPDIR are the function's own directories unless its env sets them.
func (d *Driver) env(spec driver.Spec, id string, ws *workspace, extra ...string) []string {
	fn := spec.Function
	env := make([]string, 0, len(fn.Env)+8+len(extra))
	hasPath, hasHome, hasTmp := false, false, false
	for k, v := range fn.Env {
		env = append(env, k+"="+v)
		hasPath = hasPath || k == "PATH"
		hasHome = hasHome || k == "HOME"
		hasTmp = hasTmp || k == "TMPDIR"
	}
	if !hasPath {
		env = append(env, "PATH="+DefaultPath)
	}
	if !hasHome {
		env = append(env, "HOME="+filepath.Join(ws.dir, "home"))
	}
	if !hasTmp {
		env = append(env, "TMPDIR="+filepath.Join(ws.dir, "tmp"))
	}
	env = append(env,
		"NIMBUS_FUNCTION="+fn.Name,
		"NIMBUS_NAMESPACE="+fn.Namespace,
		"NIMBUS_INSTANCE="+id,
		"NIMBUS_REVISION="+strconv.FormatUint(spec.Revision, 10),
	)
	return append(env, extra...)
}

func (d *Driver) recordPath(id string) string {
	return filepath.Join(d.opts.StateDir, id+".pid")
}

// command builds the exec.Cmd of one process. A command name without a slash
// is looked up in the function's PATH (not nimbus's); a relative path is
// taken relative to the package directory.
func (d *Driver) command(spec driver.Spec, l *launch) (*exec.Cmd, error) {
	argv := spec.Function.Command
	path, err := d.resolve(argv[0], l.env)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Dir: l.dir, Env: l.env, SysProcAttr: l.attr(), WaitDelay: time.Second}
	return cmd, nil
}

// resolve finds a command's program: with a slash it is a path (relative to
// the package directory, where the process runs); without one it is looked up
// in the function's PATH.
func (d *Driver) resolve(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	return lookPath(name, envValue(env, "PATH"))
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func lookPath(name, pathList string) (string, error) {
	for _, dir := range filepath.SplitList(pathList) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q is not in the function's PATH (%s): give a path such as ./%s, or set PATH in env", name, pathList, name)
}
