package watchdog

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The Runtime API's server: a goroutine per connection reads requests with
// net/http's parser (http.ReadRequest) and answers them itself. It is not
// an http.Server so that a parked /next can be answered by the goroutine
// that has the invocation (RoundTrip), with no goroutine woken on the way
// to the handler, and so that a request costs no background read: the
// handler is one local process, its two requests an invocation are most
// of what an invocation costs.

// maxAPIConns bounds the connections the API keeps open: a handler needs
// one or two; more are a process that is not the handler.
const maxAPIConns = 8

// apiHeaderTimeout bounds how long a request takes to arrive once its
// first byte has.
const apiHeaderTimeout = 10 * time.Second

// maxAPIRequest bounds what one request to the API brings: a body as large
// as an answer may be, its chunks' framing and a head.
const maxAPIRequest = MaxLambdaPayload + 1<<20

// apiConn is one connection to the API.
type apiConn struct {
	c  net.Conn
	br *bufio.Reader
	// lim is what br reads the connection through: each request may
	// bring maxAPIRequest bytes, head and body, no more.
	lim *io.LimitedReader
	mu  sync.Mutex // held while writing
	bw  *bufio.Writer
	// handler: it made a request under the API's prefix (set under the
	// Lambda's mu). A connection that has not may be dropped to make room,
	// the oldest (since) first.
	handler bool
	since   time.Time
}

// waiter is a /next parked until an invocation comes.
type waiter struct {
	conn *apiConn
	done chan struct{} // closed when the invocation is written, or the wait ends
	sent bool          // the invocation was written (set before done closes)
}

// apiResponse is an answer to one request.
type apiResponse struct {
	status int
	header [][2]string
	body   []byte
}

// write sends r; keepAlive false closes the connection after it.
func (c *apiConn) write(r apiResponse, keepAlive bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(r.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(r.status))
	bw.WriteString("\r\n")
	for _, h := range r.header {
		bw.WriteString(h[0])
		bw.WriteString(": ")
		bw.WriteString(h[1])
		bw.WriteString("\r\n")
	}
	bw.WriteString("Content-Length: ")
	bw.WriteString(strconv.Itoa(len(r.body)))
	if !keepAlive {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	bw.Write(r.body)
	return bw.Flush()
}

func apiErrorResponse(status int, typ, msg string) apiResponse {
	b, _ := json.Marshal(map[string]string{"errorMessage": msg, "errorType": typ})
	return apiResponse{status: status, header: [][2]string{{"Content-Type", "application/json"}}, body: b}
}

var acceptedResponse = apiResponse{status: http.StatusAccepted, header: [][2]string{{"Content-Type", "application/json"}}, body: []byte(`{"status":"OK"}`)}

// serve accepts connections until the listener closes.
func (l *Lambda) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		l.mu.Lock()
		if l.isClosed() {
			l.mu.Unlock()
			c.Close()
			continue
		}
		if len(l.conns) >= maxAPIConns {
			// Full: a connection that never made a request under the
			// prefix goes, so that idle connections of another process
			// cannot lock the handler out; if all are the handler's, the
			// new one does.
			var drop *apiConn // the oldest: a handler's new connection is the newest
			for x := range l.conns {
				if !x.handler && (drop == nil || x.since.Before(drop.since)) {
					drop = x
				}
			}
			if drop == nil {
				l.mu.Unlock()
				c.Close()
				continue
			}
			delete(l.conns, drop)
			drop.c.Close()
		}
		lim := &io.LimitedReader{R: c, N: maxAPIRequest}
		ac := &apiConn{c: c, lim: lim, br: bufio.NewReaderSize(lim, 4096), bw: bufio.NewWriterSize(c, 4096), since: time.Now()}
		l.conns[ac] = struct{}{}
		l.mu.Unlock()
		go l.serveConn(ac)
	}
}

// park waits with a parked /next until it is answered; false when the
// connection is done for. It waits by reading the connection: the
// handler sends nothing until it has the event, so the read returns
// when the event has reached it (its next request begins), or when the
// connection ends (the handler closed it, or Close did), and then the
// ask is withdrawn unless the event is being written to it right now.
func (l *Lambda) park(ac *apiConn, w *waiter) bool {
	_, err := ac.br.Peek(1)
	if err != nil {
		l.mu.Lock()
		if l.waiter == w {
			l.waiter = nil
			close(w.done)
		}
		l.mu.Unlock()
	}
	<-w.done
	if err != nil {
		return false
	}
	if !w.sent {
		ac.write(apiErrorResponse(http.StatusGone, "Runtime.Closed", "the function instance is stopping"), false)
		return false
	}
	return true
}

// serveConn answers a connection's requests in turn.
func (l *Lambda) serveConn(ac *apiConn) {
	defer func() {
		ac.c.Close()
		l.mu.Lock()
		delete(l.conns, ac)
		l.mu.Unlock()
	}()
	for {
		// Wait for a request as long as it takes (the handler is at an
		// invocation meanwhile); once it begins, it must arrive in time,
		// and within its size.
		ac.lim.N = maxAPIRequest
		if _, err := ac.br.Peek(1); err != nil {
			return
		}
		ac.c.SetReadDeadline(time.Now().Add(apiHeaderTimeout))
		req, err := readAPIRequest(ac.br)
		if err != nil {
			ac.write(apiErrorResponse(http.StatusBadRequest, "InvalidRequest", "a malformed request: "+err.Error()), false)
			return
		}
		if req.Header.Get("Expect") == "100-continue" && req.ContentLength != 0 {
			ac.mu.Lock()
			ac.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			err := ac.bw.Flush()
			ac.mu.Unlock()
			if err != nil {
				return
			}
		}
		res, parked := l.route(ac, req)
		// Whatever of the body the route left unread goes (bounded), so
		// that the next request starts where it should; past the bound
		// the connection closes.
		n, err := io.Copy(io.Discard, io.LimitReader(req.Body, MaxLambdaPayload+1))
		ac.c.SetReadDeadline(time.Time{})
		keep := err == nil && n <= MaxLambdaPayload && !req.Close
		if parked != nil {
			// A /next: answered by whoever has the invocation, or by the
			// wait's end. Meanwhile the connection is read: the handler
			// sends nothing until it has the event, so a read that ends
			// says the handler closed the connection, and its ask goes.
			if !l.park(ac, parked) || !keep {
				return
			}
			continue
		}
		if ac.write(res, keep) != nil || !keep {
			return
		}
	}
}
