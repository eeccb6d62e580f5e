package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"nimbus/internal/driver"
	"nimbus/internal/function"
	"nimbus/internal/watchdog"
)

// instance is one container.
type instance struct {
	d       *Driver
	id      string // nimbus's instance id
	cid     string // the engine's container id
	addr    string
	started time.Time
	done    chan struct{}
	mu      sync.Mutex
	err     error
	stopped bool
	stderr  *watchdog.LineWriter
	logged  chan struct{} // closed when the log stream has ended
	// lambda serves the Runtime API to a lambda handler, and is its
	// transport; nil for other protocols.
	lambda     *watchdog.Lambda
	lastOutput atomic.Int64 // unix ns of the last line the container wrote
}

// Output settling, for a lambda invocation's log tail: the engine's log
// stream lags the container, and nothing marks what was written before a
// moment, so settleOutput waits until the stream has been quiet a while.
const (
	outputQuiet  = 10 * time.Millisecond
	outputSettle = 100 * time.Millisecond
)

// settleOutput waits until no line has come for outputQuiet, or at most
// outputSettle.
func (i *instance) settleOutput() {
	start := time.Now()
	for {
		now := time.Now()
		quiet := now.Sub(time.Unix(0, i.lastOutput.Load()))
		if (quiet >= outputQuiet && now.Sub(start) >= outputQuiet) || now.Sub(start) >= outputSettle {
			return
		}
		time.Sleep(outputQuiet / 4)
	}
}

func (i *instance) ID() string { return i.id }
func (i *instance) Addr() string {
	if i.lambda != nil {
		return ""
	}
	return i.addr
}

func (i *instance) Transport() http.RoundTripper {
	if i.lambda != nil {
		return i.lambda
	}
	return nil
}
func (i *instance) Started() time.Time    { return i.started }
func (i *instance) Done() <-chan struct{} { return i.done }

// CPUTime implements driver.CPUMeter from the engine's stats (one sample).
func (i *instance) CPUTime(ctx context.Context) (time.Duration, error) {
	res, err := i.d.cli.ContainerStats(ctx, i.cid, client.ContainerStatsOptions{})
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("stats of container %s: %w", i.cid, err)
	}
	return time.Duration(st.CPUStats.CPUUsage.TotalUsage), nil
}
func (i *instance) Err() error {
	select {
	case <-i.done:
		i.mu.Lock()
		defer i.mu.Unlock()
		return i.err
	default:
		return nil
	}
}

func (d *Driver) env(spec driver.Spec, id string) []string {
	fn := spec.Function
	env := make([]string, 0, len(fn.Env)+6)
	for k, v := range fn.Env {
		env = append(env, k+"="+v)
	}
	return append(env,
		"PORT="+strconv.Itoa(ContainerPort),
		"NIMBUS_FUNCTION="+fn.Name,
		"NIMBUS_NAMESPACE="+fn.Namespace,
		"NIMBUS_INSTANCE="+id,
		"NIMBUS_REVISION="+strconv.FormatUint(spec.Revision, 10),
		"NIMBUS_PROTOCOL="+fn.Protocol,
		"NIMBUS_HEALTH_PATH="+fn.HealthPath,
	)
}

// Start creates and starts a container and waits until it answers HTTP.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	fn := spec.Function
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	user, err := d.userFor(ctx, fn.Image)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	id := fmt.Sprintf("%s-%s-%s%d", fn.Name, fn.Namespace, d.boot, d.seq.Add(1))
	cfg, host, err := d.containerConfig(spec, id, user)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	secretsDir := ""
	if len(spec.Secrets) > 0 {
		if secretsDir, err = d.writeSecrets(id, user, spec.Secrets); err != nil {
			return nil, fmt.Errorf("%w: secrets: %w", driver.ErrStartFailed, err)
		}
		host.Binds = append(host.Binds, secretsDir+":"+SecretsPath+":ro")
		cfg.Env = append(cfg.Env, "NIMBUS_SECRETS_DIR="+SecretsPath)
	}
	var api *watchdog.Lambda
	if fn.Protocol == function.ProtocolLambda {
		if api, err = d.lambdaAPI(ctx, fn); err != nil {
			if secretsDir != "" {
				os.RemoveAll(secretsDir)
			}
			return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
		}
		cfg.Env = append(cfg.Env, driver.LambdaEnv(fn, spec.Revision, id, LambdaTaskRoot, LambdaRuntimeDir, api.RuntimeAPI())...)
		api.MemoryMiB, api.Version = fn.LambdaMemoryMiB(), fn.LambdaVersion()
		spec.Log = driver.TeeLambdaOutput(spec.Log, api)
	}
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: "nimbus-" + id})
	if err != nil {
		if secretsDir != "" {
			os.RemoveAll(secretsDir)
		}
		if api != nil {
			api.Close()
		}
		return nil, fmt.Errorf("%w: create container: %w", driver.ErrStartFailed, err)
	}
	in := &instance{d: d, id: id, cid: created.ID, done: make(chan struct{}), logged: make(chan struct{}), lambda: api}
	if api != nil {
		go func() { <-in.done; api.Close() }()
		// A handler still at an invocation past its deadline is replaced,
		// as Lambda resets the sandbox after a timeout.
		api.Drain = in.settleOutput
		api.Stuck = func() {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				in.Stop(ctx)
			}()
		}
	}
	if secretsDir != "" {
		go func() { <-in.done; os.RemoveAll(secretsDir) }()
	}
	log := func(stream string) func(string) {
		return func(s string) {
			in.lastOutput.Store(time.Now().UnixNano())
			if spec.Log != nil {
				spec.Log(id, stream, s)
			}
		}
	}
	in.stderr = watchdog.NewLineWriter(log("stderr"))
	fail := func(err error) (driver.Instance, error) {
		if api != nil {
			api.Close()
		}
		d.cli.ContainerRemove(context.Background(), in.cid, client.ContainerRemoveOptions{Force: true})
		if t := in.stderr.Tail(); t != "" {
			err = fmt.Errorf("%w; last output: %s", err, t)
		}
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	// Wait for exit before starting, so that an exit is never missed.
	wait := d.cli.ContainerWait(context.Background(), in.cid, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := d.cli.ContainerStart(ctx, in.cid, client.ContainerStartOptions{}); err != nil {
		return fail(fmt.Errorf("start container: %w", err))
	}
	go in.follow(log("stdout"))
	go in.watch(wait)
	info, err := d.cli.ContainerInspect(ctx, in.cid, client.ContainerInspectOptions{})
	if err != nil {
		return fail(fmt.Errorf("inspect container: %w", err))
	}
	ep := info.Container.NetworkSettings.Networks[d.opts.Network]
	if ep == nil || !ep.IPAddress.IsValid() {
		return fail(fmt.Errorf("container has no address on network %s", d.opts.Network))
	}
	in.addr = net.JoinHostPort(ep.IPAddress.String(), strconv.Itoa(ContainerPort))
	d.mu.Lock()
	if d.close {
		d.mu.Unlock()
		return fail(fmt.Errorf("driver is shutting down"))
	}
	d.live[id] = in
	d.mu.Unlock()
	go func() {
		<-in.done
		d.mu.Lock()
		delete(d.live, id)
		d.mu.Unlock()
	}()
	if api != nil {
		err = in.waitLambda(ctx)
	} else {
		err = in.waitReady(ctx, fn.HealthPath)
	}
	if err != nil {
		in.Stop(context.Background())
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	in.started = time.Now()
	return in, nil
}

func (d *Driver) containerConfig(spec driver.Spec, id, user string) (*container.Config, *container.HostConfig, error) {
	fn := spec.Function
	labels := map[string]string{}
	for k, v := range fn.Labels {
		labels[k] = v
	}
	for k, v := range map[string]string{LabelManaged: "true", LabelOwner: d.opts.Owner, LabelFunction: fn.Name,
		LabelNamespace: fn.Namespace, LabelRevision: strconv.FormatUint(spec.Revision, 10), LabelInstance: id} {
		labels[k] = v
	}
	stop := 10
	cfg := &container.Config{Image: fn.Image, Env: d.env(spec, id), Labels: labels, User: user, StopTimeout: &stop}
	if len(fn.Command) > 0 {
		cfg.Cmd = fn.Command
	}
	pids := d.opts.PidsLimit
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(d.opts.Network),
		ReadonlyRootfs: fn.ReadOnlyRootFilesystem,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Resources:      container.Resources{PidsLimit: &pids},
	}
	if fn.ReadOnlyRootFilesystem {
		host.Tmpfs = map[string]string{"/tmp": "rw,nosuid,nodev,size=64m"}
	}
	if q := fn.Limits.Memory; q != "" {
		if _, err := function.ParseMemory(q); err != nil {
			return nil, nil, err
		}
		b, raised := fn.Limits.ContainerMemory()
		if raised && spec.Log != nil {
			spec.Log(id, "system", fmt.Sprintf("memory limit %s is below the container engine's minimum: applied as %d MiB", q, b>>20))
		}
		host.Resources.Memory = b
	}
	if q := fn.Limits.CPU; q != "" {
		n, err := function.ParseCPU(q)
		if err != nil {
			return nil, nil, err
		}
		host.Resources.NanoCPUs = n
	}
	return cfg, host, nil
}

// follow copies the container's output, demultiplexed, into the log stream.
func (i *instance) follow(stdout func(string)) {
	defer close(i.logged)
	rc, err := i.d.cli.ContainerLogs(context.Background(), i.cid, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return
	}
	defer rc.Close()
	out := watchdog.NewLineWriter(stdout)
	stdcopy.StdCopy(out, i.stderr, rc)
	out.Flush()
	i.stderr.Flush()
}

// watch records the container's exit and closes done.
func (i *instance) watch(wait client.ContainerWaitResult) {
	var err error
	select {
	case res := <-wait.Result:
		err = fmt.Errorf("container exited with status %d", res.StatusCode)
	case werr := <-wait.Error:
		err = fmt.Errorf("container wait failed: %w", werr)
	}
	select { // let the last lines arrive, so the error can quote them
	case <-i.logged:
	case <-time.After(time.Second):
	}
	i.mu.Lock()
	if !i.stopped {
		if t := i.stderr.Tail(); t != "" {
			err = fmt.Errorf("%w; last output: %s", err, t)
		}
		i.err = err
	}
	i.mu.Unlock()
	close(i.done)
}

func (i *instance) waitReady(ctx context.Context, path string) error {
	switch err := watchdog.WaitReady(ctx, i.addr, path, i.done); {
	case err == nil:
		return nil
	case errors.Is(err, watchdog.ErrExited):
		return i.Err()
	default:
		return fmt.Errorf("not ready: %w", err)
	}
}

// waitLambda waits until the handler asks for its first invocation.
func (i *instance) waitLambda(ctx context.Context) error {
	switch err := watchdog.WaitLambdaReady(ctx, i.lambda, i.done); {
	case err == nil:
		return nil
	case errors.Is(err, watchdog.ErrExited):
		return fmt.Errorf("the handler exited before asking for an invocation%s: %w", watchdog.ExitReason(err), i.Err())
	default:
		return err
	}
}

// Stop asks the container to stop (SIGTERM, then SIGKILL when ctx ends) and
// removes it.
func (i *instance) Stop(ctx context.Context) error {
	i.mu.Lock()
	i.stopped = true
	i.mu.Unlock()
	timeout := 10
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(0, int(time.Until(dl).Seconds()))
	}
	bg := context.Background()
	i.d.cli.ContainerStop(bg, i.cid, client.ContainerStopOptions{Timeout: &timeout})
	_, err := i.d.cli.ContainerRemove(bg, i.cid, client.ContainerRemoveOptions{Force: true})
	select {
	case <-i.done:
	case <-time.After(5 * time.Second):
	}
	return err
}
