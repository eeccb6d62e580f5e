// Package gateway is nimbus's data plane. It answers
// ANY /function/{name}[.{namespace}][/{path...}] by forwarding the request —
// method, rest of the path, query, headers and body, streamed both ways — to
// the least-loaded ready instance of the function.
//
// Per function, a pool (the activator) holds the ready endpoints its
// provider reports, enforces each one's maxConcurrency and keeps a bounded
// queue of waiting requests; past it the answer is 429 with Retry-After.
// When requests queue beyond what is starting — a function at zero — it
// tells the autoscaler at once (Options.Activate); when a request waits
// behind busy replicas for half a request's mean hold, it asks for one
// replica more (Options.Burst). It measures the load the
// autoscaler decides on (TakeLoad) and drains an instance before its
// provider stops it (Drain). It never starts or stops an instance. The
// function's timeout bounds the whole call (504); an instance that dies
// mid-request gives 502 at once.
//
// Functions come and go through Apply and Remove (called by the controller);
// the request path reads them under a read lock and never touches the store.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"nimbus/internal/autoscaler"
	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/reqbody"
	"nimbus/internal/series"
	"nimbus/internal/store"
)

// Options configure a Gateway.
type Options struct {
	// Runtimes that have a provider; a function of another is not served.
	Runtimes map[string]bool
	// Activate is told, without waiting, when requests to a function queue
	// beyond what is starting: active is its requests in flight or waiting.
	// It must not block (the autoscaler decides at once and acts in the
	// background).
	Activate func(fn function.Function, active int)
	// Burst is told, without waiting, when a request has queued for half a
	// request's mean hold of a slot behind busy replicas: want is one more
	// than are ready and starting. It must not block.
	Burst func(fn function.Function, want int)
	// Log receives the gateway's own lines about a function's calls.
	Log func(store.LogLine)
	// Metrics, from NewMetrics. Required.
	Metrics *Metrics
	// MaxBodyBytes bounds a request body (413 beyond). Default 32 MiB.
	MaxBodyBytes int64
	// BodyReadTimeout bounds how long a request body may take to arrive,
	// besides the function's timeout (408 beyond). Default 5m.
	BodyReadTimeout time.Duration
	// MaxPending bounds the requests queued per function (429 beyond). Default 1024.
	MaxPending int
	// OnCall, if set, is given the record of every invocation when it ends,
	// except those made with a context from Unrecorded. It must not block.
	OnCall func(calls.Record)
	Logger *slog.Logger
}

type unrecordedKey struct{}

// Unrecorded marks an invocation's context so that OnCall is not told of
// it: its caller (the async dispatcher) keeps its own record.
func Unrecorded(ctx context.Context) context.Context {
	return context.WithValue(ctx, unrecordedKey{}, true)
}

// Gateway routes invocations to function instances.
type Gateway struct {
	opts      Options
	transport *http.Transport
	metrics   *Metrics
	errorLog  *log.Logger

	mu     sync.RWMutex
	pools  map[string]*pool          // by function key
	states map[string]provider.State // the providers' latest, by function key
	loads  map[string]int64          // requests begun at the last TakeLoad
}

// New returns a gateway.
func New(o Options) *Gateway {
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.BodyReadTimeout == 0 {
		o.BodyReadTimeout = 5 * time.Minute
	}
	if o.MaxPending == 0 {
		o.MaxPending = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Gateway{opts: o, transport: newTransport(), metrics: o.Metrics,
		errorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		pools:    map[string]*pool{}, states: map[string]provider.State{}, loads: map[string]int64{}}
}

// Apply makes the gateway serve rec's revision of a function: a new function
// gets a pool; with a new revision, new requests go to its instances once
// one is ready.
func (g *Gateway) Apply(rec store.Record) error {
	fn := rec.Function
	if !g.opts.Runtimes[fn.Runtime] {
		return fmt.Errorf("function %s: runtime %q is not enabled", fn.Key(), fn.Runtime)
	}
	g.mu.Lock()
	p, ok := g.pools[fn.Key()]
	if !ok {
		p = newPool(g, fn, rec.Revision)
		g.pools[fn.Key()] = p
	}
	st, known := g.states[fn.Key()]
	g.mu.Unlock()
	if ok {
		p.update(fn, rec.Revision)
	}
	if known {
		p.setState(st)
	}
	return nil
}

// Remove stops serving a function: queued requests fail (the provider
// stops its instances).
func (g *Gateway) Remove(namespace, name string) {
	key := function.Key(namespace, name)
	g.mu.Lock()
	p := g.pools[key]
	delete(g.pools, key)
	delete(g.states, key)
	delete(g.loads, key)
	g.mu.Unlock()
	if p == nil {
		return
	}
	p.close()
	p.m.forget()
}

// SetState takes a provider's report of a function's replicas (a
// provider.Watcher).
func (g *Gateway) SetState(namespace, name string, st provider.State) {
	key := function.Key(namespace, name)
	g.mu.Lock()
	if old, ok := g.states[key]; !ok || st.Seq > old.Seq {
		g.states[key] = st
	}
	p := g.pools[key]
	g.mu.Unlock()
	if p != nil {
		p.setState(st)
	}
}

// Drain waits until an instance the provider is about to stop has no
// request in flight (a provider.Drainer).
func (g *Gateway) Drain(ctx context.Context, namespace, name, id string) {
	g.mu.RLock()
	p := g.pools[function.Key(namespace, name)]
	g.mu.RUnlock()
	if p != nil {
		p.drain(ctx, id)
	}
}

// TakeLoad returns, per function key, the load since the last call: the
// average requests in flight or waiting and the requests begun.
func (g *Gateway) TakeLoad(now time.Time) map[string]autoscaler.Sample {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]autoscaler.Sample, len(g.pools))
	for key, p := range g.pools {
		s, begun := p.takeLoad(now, g.loads[key])
		g.loads[key] = begun
		out[key] = s
	}
	return out
}

func (g *Gateway) activate(fn function.Function, active int) {
	if g.opts.Activate != nil {
		g.opts.Activate(fn, active)
	}
}

// Status reports a function's instances and counters on this gateway.
func (g *Gateway) Status(namespace, name string) (Status, []InstanceStatus, bool) {
	g.mu.RLock()
	p := g.pools[function.Key(namespace, name)]
	g.mu.RUnlock()
	if p == nil {
		return Status{}, nil, false
	}
	s, list := p.status()
	return s, list, true
}

// Series returns a function's recent series on this gateway (the last
// RecentSteps steps of RecentStep), or false for a function it does not
// serve.
func (g *Gateway) Series(namespace, name string) ([]series.Point, bool) {
	key := function.Key(namespace, name)
	g.mu.RLock()
	_, ok := g.pools[key]
	g.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return g.metrics.recent.Series(key, time.Now()), true
}

// Close fails queued requests and stops serving.
func (g *Gateway) Close(ctx context.Context) {
	g.mu.Lock()
	pools := g.pools
	g.pools = map[string]*pool{}
	g.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	g.transport.CloseIdleConnections()
}

func (g *Gateway) systemLog(fn function.Function, instance, text string) {
	if g.opts.Log != nil {
		g.opts.Log(store.LogLine{Time: time.Now(), Namespace: fn.Namespace, Function: fn.Name,
			Instance: instance, Stream: "system", Text: text})
	}
	g.opts.Logger.Debug(text, "function", fn.Key(), "instance", instance)
}

// Prefix is the path prefix the gateway serves.
const Prefix = "/function/"

// parseRoute splits "/function/name.ns/rest" into its parts.
func parseRoute(p string) (name, ns, rest string, ok bool) { return ParseRoute(Prefix, p) }

// ParseRoute splits PREFIX + "name.ns/rest" into its parts. rest keeps its
// leading slash; it is "/" when absent. The namespace defaults to "default",
// which OpenFaaS clients call "openfaas-fn".
func ParseRoute(prefix, p string) (name, ns, rest string, ok bool) {
	if !strings.HasPrefix(p, prefix) {
		return "", "", "", false
	}
	p = p[len(prefix):]
	target, rest := p, "/"
	if i := strings.IndexByte(p, '/'); i >= 0 {
		target, rest = p[:i], p[i:]
	}
	name, ns = target, function.DefaultNamespace
	if i := strings.IndexByte(target, '.'); i >= 0 {
		name, ns = target[:i], function.CanonicalNamespace(target[i+1:])
	}
	return name, ns, rest, name != ""
}

type callIDKey struct{}

// WithCallID makes an in-process invocation (an attempt of a queued call, an
// event delivery) run under callID. Outside callers cannot choose a call id:
// an X-Call-Id they send is kept as the call's correlation id, so that no
// caller can take over or overwrite another call's record.
func WithCallID(ctx context.Context, callID string) context.Context {
	return context.WithValue(ctx, callIDKey{}, callID)
}

// CorrelationHeader carries a caller's own X-Call-Id to the function.
const CorrelationHeader = "X-Correlation-Id"

// Correlate gives an outside request a call id of nimbus's own and returns
// it with the caller's X-Call-Id (if printable and at most 128 bytes), which
// the function receives as X-Correlation-Id unless the caller sent one.
func Correlate(h http.Header) (callID, correlation string) {
	callID = newCallID()
	if c := h.Get("X-Call-Id"); validCallID(c) {
		correlation = c
		if h.Get(CorrelationHeader) == "" {
			h.Set(CorrelationHeader, c)
		}
	}
	h.Set("X-Call-Id", callID)
	return callID, correlation
}

// ServeHTTP handles one invocation.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	callID, _ := r.Context().Value(callIDKey{}).(string)
	correlation := ""
	if callID == "" {
		callID, correlation = Correlate(r.Header)
	} else {
		r.Header.Set("X-Call-Id", callID)
	}
	w.Header().Set("X-Call-Id", callID)

	name, ns, rest, ok := parseRoute(r.URL.Path)
	var p *pool
	if ok {
		g.mu.RLock()
		p = g.pools[function.Key(ns, name)]
		g.mu.RUnlock()
	}
	if p == nil {
		writeError(w, ErrNotFound, fmt.Sprintf("function %q not found in namespace %q: deploy it, or check the name with 'nimbus list'", name, ns))
		return
	}
	fn := p.spec.Load()
	p.m.started.Inc()
	// As OpenFaaS's gateway: when the call began, in unix nanoseconds, to
	// the function and the caller (X-Duration-Seconds follows with the
	// response, see newProxy).
	start := []string{strconv.FormatInt(began.UnixNano(), 10)}
	r.Header["X-Start-Time"] = start
	w.Header()["X-Start-Time"] = start // one value, shared: neither is changed in place

	done := func(status int, errText string) {
		took := time.Since(began)
		p.record(status, took)
		if g.opts.OnCall != nil && r.Context().Value(unrecordedKey{}) == nil {
			g.opts.OnCall(calls.Record{CallID: callID, CorrelationID: correlation, Namespace: fn.Namespace, Function: fn.Name, Mode: calls.Sync,
				State: calls.Done, Status: status, Start: began.UTC(), Duration: took.Seconds(), Attempts: 1, Error: errText})
		}
	}
	if strings.IndexByte(rest, 0) >= 0 {
		msg := "the path has a NUL byte (%00): remove it"
		done(writeError(w, ErrBadRequest, msg), msg)
		return
	}
	if r.ContentLength > g.opts.MaxBodyBytes {
		msg := fmt.Sprintf("request body is %d bytes; the limit is %d", r.ContentLength, g.opts.MaxBodyBytes)
		done(writeError(w, ErrTooLarge, msg), msg)
		return
	}
	sw := &statusWriter{ResponseWriter: w, timeout: time.Duration(fn.Timeout), fn: fn}
	if r.Body != nil && r.Body != http.NoBody {
		// The body must arrive within the function's timeout and the
		// server's body deadline. A small one is read before a slot is
		// taken, so a client that stalls holds nothing but its connection;
		// a large or chunked one streams, and a stall fails its read at the
		// deadline (408), which ends the call and frees the slot.
		wait := min(time.Duration(fn.Timeout), g.opts.BodyReadTimeout)
		if r.ContentLength >= 0 && r.ContentLength <= maxDirectBody {
			rc := http.NewResponseController(w)
			deadline := rc.SetReadDeadline(began.Add(wait)) == nil
			buf, err := readWhole(r.Body, r.ContentLength)
			if err != nil {
				done(g.bodyError(w, r, err, wait))
				return
			}
			if deadline {
				rc.SetReadDeadline(time.Time{})
			}
			body := new(bufferedBody)
			body.Reset(buf)
			r.Body = body
		} else {
			clear := reqbody.SetDeadline(w, began.Add(wait))
			sw.body = &limitedBody{r: reqbody.NewBody(r.Body, clear), left: g.opts.MaxBodyBytes}
			r.Body = sw.body
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(fn.Timeout))
	defer cancel()

	in, _, err := p.acquire(ctx)
	got := time.Now()
	if err != nil {
		msg := err.Error()
		switch err {
		case ErrNoInstance:
			if r.Context().Err() != nil {
				sw.status = 499
				done(sw.status, "the caller went away before an instance was ready")
				return
			}
			msg = fmt.Sprintf("no instance of %s became ready within its timeout of %s", fn.Key(), sw.timeout)
		case ErrStartFailed:
			msg = fmt.Sprintf("function %s failed to start; see 'nimbus logs %s' for its output", fn.Key(), fn.Name)
			if why := p.failureReason(); why != "" {
				msg = fmt.Sprintf("function %s failed to start: %s (see 'nimbus describe %s')", fn.Key(), why, fn.Name)
			}
		case ErrOverloaded:
			msg = fmt.Sprintf("function %s is at capacity (scale.max %d × maxConcurrency %d) and %d requests are queued; retry later",
				fn.Key(), fn.Scale.Max, fn.Scale.MaxConcurrency, g.opts.MaxPending)
		}
		done(writeError(w, err, msg), msg)
		return
	}
	// Deferred: the proxy panics with http.ErrAbortHandler when the caller
	// goes away mid-response, and the slot and the record must survive that.
	defer func() {
		p.release(in, time.Since(got))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		if v := recover(); v != nil {
			if sw.errText == "" {
				sw.errText = "the caller went away mid-response"
			}
			done(sw.status, sw.errText)
			panic(v) // let net/http abort the connection as it would have
		}
		done(sw.status, sw.errText)
	}()
	r = r.WithContext(ctx)
	r.URL.Path = rest
	if r.URL.RawPath != "" {
		_, _, r.URL.RawPath, _ = parseRoute(r.URL.RawPath)
	}
	in.proxy.ServeHTTP(sw, r)
}

// readWhole reads a body of n bytes (at most maxDirectBody). Its buffer
// grows as the bytes arrive, so a client that promises 64 KiB and stalls
// holds little more than what it sent.
func readWhole(r io.Reader, n int64) ([]byte, error) {
	buf := make([]byte, 0, min(n, 4096))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(n, 2*int64(cap(buf))))-len(buf))
		}
		m, err := r.Read(buf[len(buf):int(min(int64(cap(buf)), n))])
		buf = buf[:len(buf)+m]
		switch {
		case int64(len(buf)) == n:
			return buf, nil
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
	}
	return buf, nil
}

// bufferedBody is a request body read whole before the call.
type bufferedBody struct{ bytes.Reader }

func (*bufferedBody) Close() error { return nil }

// bodyError answers a request whose body could not be read whole: 408 when
// it did not arrive in time, 499 when the caller left, else 400.
func (g *Gateway) bodyError(w http.ResponseWriter, r *http.Request, err error, wait time.Duration) (int, string) {
	switch {
	case reqbody.IsTimeout(err):
		msg := fmt.Sprintf("the request body did not arrive within %s (the function's timeout, or the server's body deadline): send it whole, or faster", wait)
		w.Header().Set("Connection", "close")
		return writeError(w, ErrBodyTimeout, msg), msg
	case r.Context().Err() != nil:
		return 499, "the caller went away while sending the body"
	default:
		msg := "reading the request body failed: " + err.Error()
		return writeError(w, ErrBadRequest, msg), msg
	}
}

// A call id is kept when it is short and printable.
func validCallID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// newCallID returns a random UUID (version 4).
func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// WaitApplied waits until this gateway serves revision rev (or a later one)
// of a function — or, with rev 0, until it serves the function no more — so
// that an API call answering a deploy or delete is followed by invocations
// that see it. While an earlier revision's instances serve (a rollout),
// that means until one of rev's is ready or its start has failed. It gives
// up when ctx ends.
func (g *Gateway) WaitApplied(ctx context.Context, namespace, name string, rev uint64) error {
	key := function.Key(namespace, name)
	for delay := 200 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		g.mu.RLock()
		p := g.pools[key]
		g.mu.RUnlock()
		if rev == 0 && p == nil {
			return nil
		}
		if rev != 0 && p != nil {
			p.mu.Lock()
			cur := p.rev
			rolled := len(p.insts) == 0 || p.readyOfRevLocked() > 0 || p.failed != nil
			p.mu.Unlock()
			if cur > rev || cur == rev && rolled {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Spec returns the spec this gateway serves for a function.
func (g *Gateway) Spec(namespace, name string) (function.Function, bool) {
	g.mu.RLock()
	p := g.pools[function.Key(namespace, name)]
	g.mu.RUnlock()
	if p == nil {
		return function.Function{}, false
	}
	return *p.spec.Load(), true
}

// NewCallID returns a random UUID, as the gateway gives calls without one.
func NewCallID() string { return newCallID() }
