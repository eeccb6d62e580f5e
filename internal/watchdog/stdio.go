// Package watchdog makes any program a function. Stdio runs a program once
// per request (body on stdin, response on stdout); Front keeps an http
// program running and proxies to it. The process driver uses Stdio in
// process; `nimbus watchdog` uses both as a container's entrypoint, with the
// same semantics.
package watchdog

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
)

// Stdio runs one process per request: the request body is its stdin and its
// stdout is the response body.
//
// Up to StdoutLimit bytes of output are held until the process exits, so the
// status can say how it ended: exit 0 is 200, anything else 500 (stderr goes
// to Log, never to the caller). Output beyond the limit is streamed with
// status 200 already sent; a failure after that aborts the response instead.
// It is an http.RoundTripper and safe for concurrent use.
type Stdio struct {
	Path string   // resolved program path
	Args []string // argv, Args[0] included
	Dir  string
	Env  []string // the whole environment; NIMBUS_HTTP_* and NIMBUS_CALL_ID are added per request
	// SysProcAttr, if set, gives each process its attributes; a process
	// group of its own is always requested.
	SysProcAttr func() *syscall.SysProcAttr
	StdoutLimit int // default 1 MiB
	// Log receives stderr lines.
	Log func(stream, line string)
	// Started, if set, is called with each process's pid; the function it
	// returns is called once the process has exited.
	Started func(pid int) func()
	// Kill, when done, kills every running process.
	Kill context.Context
}

// pipeBuffer is what a pipe holds without a reader (Linux's default).
const pipeBuffer = 64 << 10

// ErrStopped is returned once Kill is done.
var ErrStopped = errors.New("stdio function is stopped")

// RoundTrip runs the program once for req.
func (s *Stdio) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.Kill != nil && s.Kill.Err() != nil {
		return nil, ErrStopped
	}
	env := append(append(make([]string, 0, len(s.Env)+4), s.Env...),
		"NIMBUS_HTTP_METHOD="+req.Method,
		"NIMBUS_HTTP_PATH="+req.URL.Path,
		"NIMBUS_HTTP_QUERY="+req.URL.RawQuery,
		"NIMBUS_CALL_ID="+req.Header.Get("X-Call-Id"),
	)
	attr := &syscall.SysProcAttr{}
	if s.SysProcAttr != nil {
		attr = s.SysProcAttr()
	}
	attr.Setpgid = true
	cmd := &exec.Cmd{Path: s.Path, Args: s.Args, Dir: s.Dir, Env: env, SysProcAttr: attr, WaitDelay: time.Second}
	stdin, err := stdinFor(req)
	if err != nil {
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
		return nil, err
	}
	stderr := NewLineWriter(func(line string) {
		if s.Log != nil {
			s.Log("stderr", line)
		}
	})
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %q: %w", s.Args[0], err)
	}
	pid := cmd.Process.Pid
	exited := func() {}
	if s.Started != nil {
		exited = s.Started(pid)
	}
	killGroup := func() { syscall.Kill(-pid, syscall.SIGKILL) }
	stop1 := context.AfterFunc(req.Context(), killGroup)
	stop2 := func() bool { return false }
	if s.Kill != nil {
		stop2 = context.AfterFunc(s.Kill, killGroup)
	}
	run := &run{cmd: cmd, stderr: stderr, pid: pid, finish: func() { stop1(); stop2(); exited() }}

	limit := s.StdoutLimit
	if limit <= 0 {
		limit = 1 << 20
	}
	buf := make([]byte, 0, 4096)
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

type run struct {
	cmd    *exec.Cmd
	stderr *LineWriter
	pid    int
	finish func()
	once   sync.Once
	err    error
}

func (r *run) wait() error {
	r.once.Do(func() {
		r.err = r.cmd.Wait()
		r.stderr.Flush()
		syscall.Kill(-r.pid, syscall.SIGKILL) // whatever it left behind
		r.finish()
	})
	return r.err
}

// complete answers once the process has exited with all output in buf.
func (r *run) complete(req *http.Request, buf []byte) (*http.Response, error) {
	err := r.wait()
	if cerr := req.Context().Err(); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return newResponse(req, http.StatusInternalServerError,
			[]byte(fmt.Sprintf("{\"error\":{\"code\":\"function_failed\",\"message\":%q}}\n", "function "+ExitText(err)))), nil
	}
	return newResponse(req, http.StatusOK, buf), nil
}

// ExitText says how a process ended.
func ExitText(err error) string {
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
	run *run
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		if werr := b.run.wait(); werr != nil {
			return n, fmt.Errorf("function %s after its output was streamed", ExitText(werr))
		}
	}
	return n, err
}

func (b *streamBody) Close() error {
	syscall.Kill(-b.run.pid, syscall.SIGKILL)
	b.run.wait()
	return nil
}
