// Package reqbody bounds how long a request body may take to arrive, so that
// a client that promises a body and stalls is answered (408) instead of
// holding a goroutine, an instance slot or a connection for good.
//
// A deadline is set on the connection (http.ResponseController), which makes
// a blocked read fail; it is cleared once the body has been read to its end,
// so that it does not outlive the body (a read that failed at it would
// cancel the request's context; net/http's HTTP/1 server also clears it when
// it starts its background read at the body's end, and the tests check the
// outcome, not who cleared it). After a timeout it stays, so that net/http's
// reads of the rest fail fast too and the connection is closed. Handlers whose writer has no connection (an
// in-process call) get no deadline.
package reqbody

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// ErrTimeout: the body did not arrive by its deadline.
var ErrTimeout = errors.New("the request body did not arrive in time")

// IsTimeout reports whether err is a read that failed at its deadline.
func IsTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// SetDeadline sets the read deadline of w's connection and returns what
// clears it. Without a connection it does nothing.
func SetDeadline(w http.ResponseWriter, at time.Time) (clear func()) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(at) != nil {
		return func() {}
	}
	return func() { rc.SetReadDeadline(time.Time{}) }
}

// Limit wraps r's body so that it must arrive within timeout: the deadline
// is set now and cleared when the body has been read to its end. Requests
// without a body are left alone.
func Limit(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	if r.Body == nil || r.Body == http.NoBody || timeout <= 0 {
		return
	}
	clear := SetDeadline(w, time.Now().Add(timeout))
	r.Body = &Body{ReadCloser: r.Body, clear: clear}
}

// Body clears its deadline once read to its end; a read that fails at the
// deadline returns ErrTimeout, and the deadline stays.
type Body struct {
	io.ReadCloser
	clear func()
	done  bool
}

// NewBody wraps rc so that clear runs once it is read to its end.
func NewBody(rc io.ReadCloser, clear func()) *Body { return &Body{ReadCloser: rc, clear: clear} }

func (b *Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.clear()
	} else if err != nil && IsTimeout(err) {
		// The deadline stays: net/http's own reads of what is left (to
		// reuse the connection) must fail fast too, not wait for a client
		// that stalled.
		err = ErrTimeout
	}
	return n, err
}
