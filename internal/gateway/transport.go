package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// directTransport carries a request to one http instance on the caller's
// goroutine: it writes the request and reads the response on a pooled
// keep-alive connection, with no reader or writer goroutine per connection.
// That saves the two goroutine hand-offs per request that http.Transport
// makes, which on a small VM is most of a proxy hop's cost.
//
// It takes only requests whose body is small and of known length (so writing
// it before reading cannot deadlock, even if the function answers without
// reading it) and that do not upgrade the connection or expect 100-continue.
// Everything else goes to fallback (http.Transport), as do requests when a
// pooled connection turns out to be closed.
type directTransport struct {
	addr     string
	fallback http.RoundTripper
	mu       sync.Mutex
	idle     []*directConn
	closed   bool
	// alive checks a pooled connection before reuse (a test can replace it).
	alive func(net.Conn) bool
}

// maxDirectBody fits in a loopback socket's send buffer.
const maxDirectBody = 64 << 10

// maxIdlePerInstance bounds the pooled connections of one instance.
const maxIdlePerInstance = 1024

type directConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	sent   captureWriter // what bw wrote for the current request
	reused bool          // taken from the pool, not freshly dialled
}

// captureWriter passes writes to the connection and keeps a copy of a
// request that fits in one buffer, so that it can be sent again.
type captureWriter struct {
	w    io.Writer
	buf  []byte
	over bool
}

func (c *captureWriter) reset() { c.buf, c.over = c.buf[:0], false }

func (c *captureWriter) Write(p []byte) (int, error) {
	if !c.over && len(c.buf)+len(p) <= 4096 {
		c.buf = append(c.buf, p...)
	} else {
		c.over = true
	}
	return c.w.Write(p)
}

func newDirectTransport(addr string, fallback http.RoundTripper) *directTransport {
	return &directTransport{addr: addr, fallback: fallback, alive: alive}
}

func eligible(req *http.Request) bool {
	if req.ContentLength < 0 || req.ContentLength > maxDirectBody {
		return false
	}
	if req.ContentLength > 0 && req.Body == nil {
		return false
	}
	if req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" {
		return false
	}
	return len(req.TransferEncoding) == 0 && len(req.Trailer) == 0
}

// HeaderError is a request header nimbus will not send: a name or value
// with CR, LF, NUL or another control character. Sent raw it would split
// the request.
type HeaderError struct{ Name string }

func (e *HeaderError) Error() string {
	return fmt.Sprintf("header %q has a control character (CR, LF, NUL) in its name or value", e.Name)
}

// checkHeaders returns a HeaderError for the first header that cannot be
// written as it is.
func checkHeaders(h http.Header) error {
	for k, vs := range h {
		if !validName(k) {
			return &HeaderError{k}
		}
		for _, v := range vs {
			if controlIn(v) {
				return &HeaderError{k}
			}
		}
	}
	return nil
}

// validName reports a header name with no control character, space or
// colon.
func validName(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == ':' || c == 0x7f {
			return false
		}
	}
	return k != ""
}

// controlIn reports a control character other than tab.
func controlIn(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A request net/http read off the wire (RequestURI set) was checked
	// there: its server answers 400 to a control character in a header
	// name or value, and the headers nimbus adds are its own. A request
	// built in process (a queued call's attempt, an event delivery) has
	// no RequestURI and is checked here.
	if req.RequestURI == "" {
		if err := checkHeaders(req.Header); err != nil {
			return nil, err
		}
	}
	if !eligible(req) {
		return t.fallback.RoundTrip(req)
	}
	dc := t.get()
	if dc == nil {
		var err error
		if dc, err = t.dial(req); err != nil {
			return nil, err
		}
	}
	dc.sent.reset()
	resp, stop, err := t.exchange(dc, req, func() error { return writeRequest(dc.bw, req) })
	if err != nil && dc.reused && replayable(req) && !dc.sent.over && len(dc.sent.buf) > 0 && req.Context().Err() == nil {
		// A pooled connection the function had just closed: nothing was
		// answered, and the request is safe to repeat, so send it again on a
		// fresh connection (what http.Transport does for such requests).
		sent := append([]byte(nil), dc.sent.buf...)
		if fresh, derr := t.dial(req); derr == nil {
			dc = fresh
			resp, stop, err = t.exchange(dc, req, func() error { _, err := dc.c.Write(sent); return err })
		}
	}
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	resp.Body = &directBody{rc: resp.Body, t: t, dc: dc, stop: stop, reuse: !resp.Close && !req.Close}
	return resp, nil
}

// exchange sends a request with send and reads the final response; on error
// the connection is closed.
func (t *directTransport) exchange(dc *directConn, req *http.Request, send func() error) (*http.Response, func() bool, error) {
	// Abandon the connection if the caller gives up mid-exchange.
	stop := context.AfterFunc(req.Context(), func() { dc.c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, func() bool, error) {
		stop()
		dc.c.Close()
		return nil, nil, err
	}
	if err := send(); err != nil {
		return fail(err)
	}
	for {
		resp, err := http.ReadResponse(dc.br, req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, stop, nil
		}
		// 1xx informational: skip it and read the final response.
		io.Copy(io.Discard, resp.Body)
	}
}

// replayable: requests safe to send twice, by http.Transport's rule.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func (t *directTransport) dial(req *http.Request) (*directConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(req.Context(), "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	dc := &directConn{c: c, br: bufio.NewReaderSize(c, 4096), sent: captureWriter{w: c, buf: make([]byte, 0, 4096)}}
	dc.bw = bufio.NewWriterSize(&dc.sent, 4096)
	return dc, nil
}

// get takes a pooled connection that is still open, or nil.
func (t *directTransport) get() *directConn {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			return nil
		}
		dc := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if t.alive(dc.c) {
			dc.reused = true
			return dc
		}
		dc.c.Close()
	}
}

func (t *directTransport) put(dc *directConn) {
	t.mu.Lock()
	if t.closed || len(t.idle) >= maxIdlePerInstance || dc.br.Buffered() > 0 {
		t.mu.Unlock()
		dc.c.Close()
		return
	}
	dc.c.SetDeadline(time.Time{})
	t.idle = append(t.idle, dc)
	t.mu.Unlock()
}

// Close drops every pooled connection.
func (t *directTransport) Close() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	t.mu.Unlock()
	for _, dc := range idle {
		dc.c.Close()
	}
}

// alive reports whether an idle connection is still open and has nothing
// unexpected to read: one non-blocking peek, no goroutine.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && errors.Is(err, syscall.EAGAIN) // nothing to read: open and idle
		return true
	})
	return err == nil && ok
}

// directBody returns the connection to the pool once the body is read to
// its end, and closes it otherwise.
type directBody struct {
	rc    io.ReadCloser
	t     *directTransport
	dc    *directConn
	stop  func() bool
	reuse bool
	done  bool
	eof   bool
}

func (b *directBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *directBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	err := b.rc.Close()
	stopped := b.stop()
	if b.eof && b.reuse && stopped {
		b.t.put(b.dc)
	} else {
		b.dc.c.Close()
	}
	return err
}
