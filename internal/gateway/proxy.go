package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/reqbody"
)

type proxyHandler = *httputil.ReverseProxy

// newTransport is the one pooled keep-alive transport to http instances. Its
// idle pool covers high concurrency: a small pool (http.DefaultTransport keeps
// two per host) halves throughput under load.
func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

var buffers = &bufferPool{p: sync.Pool{New: func() any { v := make([]byte, 32<<10); return &v }}}

// newProxy builds the reverse proxy to one instance. Requests arrive with the
// path already rewritten to the function's own path.
func (g *Gateway) newProxy(in *instance) *httputil.ReverseProxy {
	var rt http.RoundTripper
	if t := in.Transport; t != nil {
		rt = t
	} else {
		dt := newDirectTransport(in.Addr, g.transport)
		in.closeIdle = dt.Close
		rt = dt
	}
	addr := in.Addr
	if addr == "" {
		addr = "instance"
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:  rt,
		BufferPool: buffers,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del("X-Call-Id") // the gateway's call id already stands
			// The time to the response's headers, as OpenFaaS's watchdogs
			// give it ("%f" seconds), unless the function gave its own.
			if resp.Header.Get("X-Duration-Seconds") == "" {
				if ns, err := strconv.ParseInt(resp.Request.Header.Get("X-Start-Time"), 10, 64); err == nil {
					took := time.Since(time.Unix(0, ns)).Seconds()
					resp.Header["X-Duration-Seconds"] = []string{strconv.FormatFloat(took, 'f', 6, 64)}
				}
			}
			return nil
		},
		ErrorHandler: g.proxyError,
		ErrorLog:     g.errorLog,
	}
}

// proxyError maps what went wrong on the way to an instance to a status.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	sw, _ := w.(*statusWriter)
	var tooLarge bool
	var bodyErr error
	if sw != nil && sw.body != nil {
		tooLarge, bodyErr = sw.body.ended()
	}
	var msg string
	switch {
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		msg = "function timed out after " + sw.timeout.String()
		writeError(w, ErrTimeout, msg)
	case bodyErr != nil && reqbody.IsTimeout(bodyErr):
		msg = fmt.Sprintf("the request body did not arrive within the function's timeout of %s or the server's body deadline", sw.timeout)
		w.Header().Set("Connection", "close")
		writeError(w, ErrBodyTimeout, msg)
	case errors.As(err, new(*HeaderError)):
		msg = "bad request: " + err.Error()
		writeError(w, ErrBadRequest, msg)
	case tooLarge:
		msg = "request body exceeds the gateway's limit"
		writeError(w, ErrTooLarge, msg)
	case errors.Is(r.Context().Err(), context.Canceled):
		// The caller left; nobody reads an answer.
		msg = "the caller went away"
		if sw != nil {
			sw.status = 499
		}
	default:
		// The caller is told what failed and where to look; the detail
		// (addresses, the transport's error) goes to the function's logs
		// and the call record, which only the admin reads.
		public := "the function's instance failed while answering (it crashed or closed the connection)"
		if sw != nil && sw.fn != nil {
			public = fmt.Sprintf("function %s failed while answering (its instance crashed or closed the connection): see 'nimbus logs %s'", sw.fn.Key(), sw.fn.Name)
		}
		msg = "function instance failed: " + err.Error()
		writeError(w, ErrUpstream, public)
		if sw != nil && sw.fn != nil {
			g.systemLog(*sw.fn, "", "a request failed: "+err.Error())
		}
	}
	if sw != nil {
		sw.errText = msg
	}
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status  int
	errText string // why the gateway chose status, if it did
	timeout time.Duration
	body    *limitedBody
	fn      *function.Function
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitedBody fails a read past the body limit and remembers that it did.
// The transport may read it on a goroutine of its own while the proxy's
// error handler asks how it ended: that is behind mu.
type limitedBody struct {
	r    io.ReadCloser
	left int64

	mu       sync.Mutex
	tooLarge bool
	err      error // the read error other than EOF, if any
}

// ended reports whether the body went past the limit, and the read error
// other than EOF, if any.
func (b *limitedBody) ended() (tooLarge bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tooLarge, b.err
}

var errBodyTooLarge = errors.New("request body too large")

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe for one more byte: only an actual excess is an error.
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			b.mu.Lock()
			b.tooLarge = true
			b.mu.Unlock()
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }
