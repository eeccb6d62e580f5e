// Package process is the default driver: each instance is a local process run
// from the function's unpacked package.
//
// Every process gets its own process group, a parent-death signal (SIGKILL when
// nimbus dies) and a record in the state directory, so that the next start of
// nimbus kills whatever survived (Reap). When nimbus runs as root, functions run
// as an unprivileged user. A function's environment is its spec's env plus
// PORT and the NIMBUS_* variables documented in docs/runtime-contract.md —
// never nimbus's own environment.
package process

import (
	"context"
	"errors"
	"fmt"
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

	"nimbus/internal/driver"
	"nimbus/internal/function"
)

var _ driver.Driver = (*Driver)(nil)

// DefaultPath is the PATH a function gets unless its env sets one.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// Options configure the driver.
type Options struct {
	// StateDir keeps one record per running process, for Reap. Required.
	StateDir string
	// RunAs is the user functions run as. Empty: "nobody" when nimbus runs as
	// root, else nimbus's own user.
	RunAs string
	// StopGrace is how long Close waits for instances to exit after SIGTERM.
	StopGrace time.Duration
	// StdoutLimit is how much of a stdio function's output is held before
	// the response status is committed (see stdio.go). Default 1 MiB.
	StdoutLimit int
}

// Driver runs function instances as local processes.
type Driver struct {
	opts  Options
	cred  *syscall.Credential // nil: run as ourselves
	pkgs  *packageCache
	seq   atomic.Uint64
	boot  string
	mu    sync.Mutex
	live  map[string]stopper
	close bool
}

type stopper interface {
	Stop(ctx context.Context) error
}

// New returns a driver. It creates StateDir and a private package directory.
func New(o Options) (*Driver, error) {
	if o.StateDir == "" {
		return nil, errors.New("process driver: StateDir is required")
	}
	if o.StopGrace == 0 {
		o.StopGrace = 5 * time.Second
	}
	if o.StdoutLimit == 0 {
		o.StdoutLimit = 1 << 20
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	cred, err := credential(o.RunAs)
	if err != nil {
		return nil, err
	}
	pkgs, err := newPackageCache()
	if err != nil {
		return nil, err
	}
	return &Driver{opts: o, cred: cred, pkgs: pkgs, live: map[string]stopper{},
		boot: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}, nil
}

// credential picks the user functions run as.
func credential(name string) (*syscall.Credential, error) {
	if name == "" {
		if os.Geteuid() != 0 {
			return nil, nil
		}
		name = "nobody"
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

// Start starts one instance and waits until it is ready.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	fn := spec.Function
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	dir, err := d.pkgs.dir(ctx, fn.Package, spec.OpenPackage)
	if err != nil {
		return nil, fmt.Errorf("%w: package %s: %w", driver.ErrStartFailed, fn.Package, err)
	}
	id := d.newID(fn)
	var extra []string
	secretsDir := ""
	if len(spec.Secrets) > 0 {
		if secretsDir, err = d.writeSecrets(id, spec.Secrets); err != nil {
			return nil, fmt.Errorf("%w: secrets: %w", driver.ErrStartFailed, err)
		}
		extra = append(extra, "NIMBUS_SECRETS_DIR="+secretsDir)
	}
	var inst interface {
		driver.Instance
	}
	switch fn.Protocol {
	case function.ProtocolStdio:
		path, err := d.resolve(spec.Function.Command[0], d.env(spec, id, dir))
		if err != nil {
			removeSecrets(secretsDir)
			return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
		}
		inst = newStdio(d, id, dir, spec, path, extra)
	default:
		inst, err = startHTTP(ctx, d, id, dir, spec, extra)
		if err != nil {
			removeSecrets(secretsDir)
			return nil, err
		}
	}
	d.mu.Lock()
	if d.close {
		d.mu.Unlock()
		inst.Stop(context.Background())
		removeSecrets(secretsDir)
		return nil, fmt.Errorf("%w: driver is shutting down", driver.ErrStartFailed)
	}
	d.live[id] = inst
	d.mu.Unlock()
	go func() {
		<-inst.Done()
		removeSecrets(secretsDir)
		d.mu.Lock()
		delete(d.live, id)
		d.mu.Unlock()
	}()
	return inst, nil
}

// Close stops every instance, waiting up to StopGrace for each to exit.
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
	return d.pkgs.remove()
}

// env builds a process's whole environment: nothing is inherited.
func (d *Driver) env(spec driver.Spec, id, dir string, extra ...string) []string {
	fn := spec.Function
	env := make([]string, 0, len(fn.Env)+8+len(extra))
	hasPath, hasHome := false, false
	for k, v := range fn.Env {
		env = append(env, k+"="+v)
		hasPath = hasPath || k == "PATH"
		hasHome = hasHome || k == "HOME"
	}
	if !hasPath {
		env = append(env, "PATH="+DefaultPath)
	}
	if !hasHome {
		env = append(env, "HOME="+dir)
	}
	env = append(env,
		"NIMBUS_FUNCTION="+fn.Name,
		"NIMBUS_NAMESPACE="+fn.Namespace,
		"NIMBUS_INSTANCE="+id,
		"NIMBUS_REVISION="+strconv.FormatUint(spec.Revision, 10),
	)
	return append(env, extra...)
}

// sysProcAttr: own process group, killed with nimbus, unprivileged user.
func (d *Driver) sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: d.cred}
}

func (d *Driver) recordPath(id string) string {
	return filepath.Join(d.opts.StateDir, id+".pid")
}

// command builds the exec.Cmd of one process. A command name without a slash
// is looked up in the function's PATH (not nimbus's); a relative path is
// taken relative to the package directory.
func (d *Driver) command(spec driver.Spec, dir string, env []string) (*exec.Cmd, error) {
	argv := spec.Function.Command
	path, err := d.resolve(argv[0], env)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Dir: dir, Env: env, SysProcAttr: d.sysProcAttr(), WaitDelay: time.Second}
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
