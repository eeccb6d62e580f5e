package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/function"
	"nimbus/internal/watchdog"
)

// httpInstance is a long-running process serving HTTP on 127.0.0.1:$PORT.
type httpInstance struct {
	id      string
	addr    string
	cmd     *exec.Cmd
	record  string
	started time.Time
	done    chan struct{}
	err     error // set before done closes
	stopped bool
	mu      sync.Mutex
	stderr  *watchdog.LineWriter
	cgroup  string // the instance's cgroup, if it has one
	// drain takes the output the process wrote so far into its log (nil
	// unless the output goes through drainPipes).
	drain func()
}

func (i *httpInstance) ID() string                   { return i.id }
func (i *httpInstance) Addr() string                 { return i.addr }
func (i *httpInstance) Transport() http.RoundTripper { return nil }
func (i *httpInstance) Started() time.Time           { return i.started }
func (i *httpInstance) Done() <-chan struct{}        { return i.done }

// CPUTime implements driver.CPUMeter from the instance's cgroup.
func (i *httpInstance) CPUTime(context.Context) (time.Duration, error) { return cgroupCPU(i.cgroup) }
func (i *httpInstance) Err() error {
	select {
	case <-i.done:
		return i.err
	default:
		return nil
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startHTTP(ctx context.Context, d *Driver, l *launch, spec driver.Spec) (*httpInstance, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("%w: no free port: %w", driver.ErrStartFailed, err)
	}
	inst, err := startProcess(d, l, spec, "127.0.0.1:"+strconv.Itoa(port), []string{"PORT=" + strconv.Itoa(port)}, nil)
	if err != nil {
		return nil, err
	}
	if err := inst.waitReady(ctx, spec.Function.HealthPath); err != nil {
		inst.Stop(context.Background())
		return nil, err
	}
	inst.started = time.Now()
	return inst, nil
}

// startProcess starts the function's program with env added to the
// launch's; addr is what the instance reports, exited (if set) runs when
// the process has ended.
func startProcess(d *Driver, l *launch, spec driver.Spec, addr string, env []string, exited func()) (*httpInstance, error) {
	fn := spec.Function
	id := l.id
	log := func(stream string) func(string) {
		return func(s string) {
			if spec.Log != nil {
				spec.Log(id, stream, s)
			}
		}
	}
	l.env = append(l.env, env...)
	cmd, err := d.command(spec, l)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrStartFailed, err)
	}
	stdout := watchdog.NewLineWriter(log("stdout"))
	stderr := watchdog.NewLineWriter(log("stderr"))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	inst := &httpInstance{id: id, addr: addr, cmd: cmd, cgroup: l.cgroupPath(),
		record: d.recordPath(id), done: make(chan struct{}), stderr: stderr}
	var pipes []*drainPipe
	if fn.Protocol == function.ProtocolLambda {
		// A lambda invocation's log tail needs what was written before a
		// moment: nimbus reads the output itself (see drainPipe).
		var ends []*os.File
		for _, w := range []*watchdog.LineWriter{stdout, stderr} {
			p, end, err := newDrainPipe(w)
			if err != nil {
				for _, e := range ends {
					e.Close()
				}
				return nil, fmt.Errorf("%w: output pipe: %w", driver.ErrStartFailed, err)
			}
			pipes, ends = append(pipes, p), append(ends, end)
		}
		cmd.Stdout, cmd.Stderr = ends[0], ends[1]
		defer func() {
			for _, e := range ends {
				e.Close() // the process has its own copies
			}
		}()
		inst.drain = func() {
			for _, p := range pipes {
				p.Drain()
			}
		}
	}
	if err := cmd.Start(); err != nil {
		for _, p := range pipes {
			p.r.Close()
		}
		return nil, fmt.Errorf("%w: run %q in the package: %w", driver.ErrStartFailed, fn.Command[0], err)
	}
	for _, p := range pipes {
		go p.run()
	}
	if err := writeRecord(inst.record, cmd.Process.Pid); err != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	go func() {
		werr := cmd.Wait()
		// Kill whatever the program left in its group (its cgroup, if any,
		// is emptied when the driver releases the instance).
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, p := range pipes {
			p.wait(time.Second)
		}
		stdout.Flush()
		stderr.Flush()
		os.Remove(inst.record)
		inst.mu.Lock()
		if !inst.stopped {
			inst.err = fmt.Errorf("instance exited: %v", werr)
			if t := stderr.Tail(); t != "" {
				inst.err = fmt.Errorf("%w; last output: %s", inst.err, t)
			}
		}
		inst.mu.Unlock()
		if exited != nil {
			exited()
		}
		close(inst.done)
	}()
	return inst, nil
}

// waitReady waits until the instance answers on its health path.
func (i *httpInstance) waitReady(ctx context.Context, path string) error {
	switch err := watchdog.WaitReady(ctx, i.addr, path, i.done); {
	case err == nil:
		return nil
	case errors.Is(err, watchdog.ErrExited):
		return fmt.Errorf("%w: %w", driver.ErrStartFailed, i.err)
	default:
		return fmt.Errorf("%w: not ready: %w", driver.ErrStartFailed, err)
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL when ctx ends.
func (i *httpInstance) Stop(ctx context.Context) error {
	i.mu.Lock()
	i.stopped = true
	i.mu.Unlock()
	select {
	case <-i.done:
		return nil
	default:
	}
	pgid := i.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-i.done:
	case <-ctx.Done():
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-i.done
	}
	return nil
}
