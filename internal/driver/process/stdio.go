package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"nimbus/internal/driver"
)

// stdioInstance runs one process per request: the request body is the
// process's stdin and its stdout is the response body.
//
// Up to StdoutLimit bytes of output are held until the process exits, so the
// status can say how it ended: exit 0 is 200, anything else 500 (the stderr
// tail goes to the logs, never to the caller). Output beyond the limit is
// streamed with status 200 already sent; a failure after that aborts the
// response instead.
type stdioInstance struct {
	d       *Driver
	id      string
	dir     string
	spec    driver.Spec
	started time.Time
	base    context.Context // cancelled when the instance is killed
	kill    context.CancelFunc
	wg      sync.WaitGroup
	done    chan struct{}
	once    sync.Once
}

func newStdio(d *Driver, id, dir string, spec driver.Spec) *stdioInstance {
	base, kill := context.WithCancel(context.Background())
	return &stdioInstance{d: d, id: id, dir: dir, spec: spec, started: time.Now(),
		base: base, kill: kill, done: make(chan struct{})}
}

func (s *stdioInstance) ID() string                   { return s.id }
func (s *stdioInstance) Addr() string                 { return "" }
func (s *stdioInstance) Transport() http.RoundTripper { return s }
func (s *stdioInstance) Started() time.Time           { return s.started }
func (s *stdioInstance) Done() <-chan struct{}        { return s.done }
func (s *stdioInstance) Err() error                   { return nil }

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

var errStopped = errors.New("instance is stopped")

// RoundTrip runs the program once for req.
func (s *stdioInstance) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-s.done:
		return nil, errStopped
	default:
	}
	s.wg.Add(1)
	env := s.d.env(s.spec, s.id, s.dir,
		"NIMBUS_HTTP_METHOD="+req.Method,
		"NIMBUS_HTTP_PATH="+req.URL.Path,
		"NIMBUS_HTTP_QUERY="+req.URL.RawQuery,
		"NIMBUS_CALL_ID="+req.Header.Get("X-Call-Id"),
	)
	cmd, err := s.d.command(s.spec, s.dir, env)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	stdin, err := stdinFor(req)
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	if stdin != nil {
		defer stdin.Close() // the child has its own copy once started
		cmd.Stdin = stdin
	} else if req.Body != nil && req.Body != http.NoBody {
		cmd.Stdin = req.Body // streamed by os/exec's copying goroutine
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.wg.Done()
		return nil, err
	}
	stderr := newLineWriter(func(line string) {
		if s.spec.Log != nil {
			s.spec.Log(s.id, "stderr", line)
		}
	})
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("run %q: %w", s.spec.Function.Command[0], err)
	}
	pid := cmd.Process.Pid
	record := s.d.recordPath(s.id + "-" + strconv.Itoa(pid))
	writeRecord(record, pid)
	// Kill the process group when the caller gives up or the instance is killed.
	stopKill := context.AfterFunc(req.Context(), func() { syscall.Kill(-pid, syscall.SIGKILL) })
	stopKill2 := context.AfterFunc(s.base, func() { syscall.Kill(-pid, syscall.SIGKILL) })
	run := &stdioRun{cmd: cmd, stderr: stderr, record: record, pid: pid, finish: func() {
		stopKill()
		stopKill2()
		s.wg.Done()
	}}

	buf := make([]byte, 0, 4096)
	limit := s.d.opts.StdoutLimit
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, rerr := stdout.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			return run.complete(req, buf)
		}
		if rerr != nil {
			run.wait()
			return nil, rerr
		}
	}
	resp := newResponse(req, http.StatusOK, buf)
	resp.ContentLength = -1
	resp.Body = &streamBody{r: io.MultiReader(bytes.NewReader(buf), stdout), run: run}
	return resp, nil
}

type stdioRun struct {
	cmd    *exec.Cmd
	stderr *lineWriter
	record string
	pid    int
	finish func()
	once   sync.Once
	err    error
}

func (r *stdioRun) wait() error {
	r.once.Do(func() {
		r.err = r.cmd.Wait()
		r.stderr.Flush()
		syscall.Kill(-r.pid, syscall.SIGKILL) // whatever it left behind
		os.Remove(r.record)
		r.finish()
	})
	return r.err
}

// complete answers once the process has exited with all output in buf.
func (r *stdioRun) complete(req *http.Request, buf []byte) (*http.Response, error) {
	err := r.wait()
	if cerr := req.Context().Err(); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return newResponse(req, http.StatusInternalServerError,
			[]byte(fmt.Sprintf("{\"error\":{\"code\":\"function_failed\",\"message\":%q}}\n", "function "+exitText(err)))), nil
	}
	return newResponse(req, http.StatusOK, buf), nil
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by signal " + ws.Signal().String()
		}
		return "exited with status " + strconv.Itoa(ee.ExitCode())
	}
	return "failed: " + err.Error()
}

func newResponse(req *http.Request, code int, body []byte) *http.Response {
	h := make(http.Header, 2)
	if code == http.StatusOK {
		h.Set("Content-Type", http.DetectContentType(body))
	} else {
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{
		StatusCode: code, Status: strconv.Itoa(code) + " " + http.StatusText(code),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Request: req,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
	}
}

// streamBody streams output past the limit; a failed exit aborts the body.
type streamBody struct {
	r   io.Reader
	run *stdioRun
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		if werr := b.run.wait(); werr != nil {
			return n, fmt.Errorf("function %s after its output was streamed", exitText(werr))
		}
	}
	return n, err
}

func (b *streamBody) Close() error {
	syscall.Kill(-b.run.pid, syscall.SIGKILL)
	b.run.wait()
	return nil
}

// pipeBuffer is what a pipe holds without a reader (Linux's default).
const pipeBuffer = 64 << 10

// stdinFor writes a small body of known length into a pipe up front and
// returns the pipe's read end, so the child reads it directly and no goroutine
// copies it. Larger or unknown bodies return nil and are streamed instead.
func stdinFor(req *http.Request) (*os.File, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength < 0 || req.ContentLength > pipeBuffer {
		return nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return r, nil
}
