package process

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/watchdog"
)

// stdioInstance forks one process per request through watchdog.Stdio. Each
// process gets a record for Reap, the driver's user and a parent-death signal.
type stdioInstance struct {
	id      string
	started time.Time
	rt      *watchdog.Stdio
	kill    context.CancelFunc
	wg      sync.WaitGroup
	done    chan struct{}
	once    sync.Once
	cgroup  string // the instance's cgroup, if it has one
}

func newStdio(d *Driver, l *launch, spec driver.Spec, path string) *stdioInstance {
	id := l.id
	base, kill := context.WithCancel(context.Background())
	s := &stdioInstance{id: id, started: time.Now(), kill: kill, done: make(chan struct{}), cgroup: l.cgroupPath()}
	s.rt = &watchdog.Stdio{
		Path: path, Args: spec.Function.Command, Dir: l.dir, Env: l.env,
		SysProcAttr: l.attr, StdoutLimit: d.opts.StdoutLimit, Kill: base,
		Log: func(stream, line string) {
			if spec.Log != nil {
				spec.Log(id, stream, line)
			}
		},
		Started: func(pid int) func() {
			s.wg.Add(1)
			record := d.recordPath(id + "-" + strconv.Itoa(pid))
			writeRecord(record, pid)
			return func() { os.Remove(record); s.wg.Done() }
		},
	}
	return s
}

func (s *stdioInstance) ID() string                   { return s.id }
func (s *stdioInstance) Addr() string                 { return "" }
func (s *stdioInstance) Transport() http.RoundTripper { return s.rt }
func (s *stdioInstance) Started() time.Time           { return s.started }
func (s *stdioInstance) Done() <-chan struct{}        { return s.done }

// CPUTime implements driver.CPUMeter from the instance's cgroup (every
// request's process runs in it).
func (s *stdioInstance) CPUTime(context.Context) (time.Duration, error) { return cgroupCPU(s.cgroup) }
func (s *stdioInstance) Err() error                                     { return nil }

// Stop lets running requests finish until ctx ends, then kills them.
func (s *stdioInstance) Stop(ctx context.Context) error {
	s.once.Do(func() {
		finished := make(chan struct{})
		go func() { s.wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-ctx.Done():
			s.kill()
			<-finished
		}
		s.kill()
		close(s.done)
	})
	<-s.done
	return nil
}
