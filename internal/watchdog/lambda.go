package watchdog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LambdaAPIVersion is the Runtime API version served.
const LambdaAPIVersion = "2018-06-01"

// MaxLambdaPayload bounds an invocation's event and its response, as
// Lambda's synchronous invocations (6 MB).
const MaxLambdaPayload = 6 << 20

// Lambda runs a handler that speaks the AWS Lambda Runtime API: it serves
// the API to one process on a loopback port (under a random path prefix, so
// that another process on the machine cannot take its invocations) and
// turns each HTTP request it is given (RoundTrip) into one invocation. The
// request body is the event; the handler's response is the answer's body,
// and a handler error is a 500 carrying Lambda's error JSON and
// X-Amz-Function-Error: Unhandled. One invocation runs at a time, as in
// Lambda.
type Lambda struct {
	// ARN is reported to the handler as the invoked function's.
	ARN string
	// Timeout is the invocation's deadline (Lambda-Runtime-Deadline-Ms).
	Timeout time.Duration
	// Stuck is called when an invocation the handler took passes its
	// deadline unanswered: the process is still at it and must be
	// replaced, as Lambda resets the sandbox. The API is closed first, so
	// the instance takes no more invocations.
	Stuck func()
	// MemoryMiB is reported in a log tail's REPORT line; Version in its
	// START line ($LATEST when empty).
	MemoryMiB int64
	Version   string
	// Drain, if set, brings the output the handler wrote so far to Output;
	// it is called before a log tail is cut (WithLogTail).
	Drain func()

	prefix string
	ln     net.Listener
	ready  chan struct{} // closed at the first /next
	closed chan struct{}

	mu      sync.Mutex
	conns   map[*apiConn]struct{}
	queue   []*invocation // waiting for the handler to ask
	waiter  *waiter       // the handler's /next, parked
	current *invocation   // taken by the handler, not answered
	logging *invocation   // whose output Output records: current, until its tail is cut
	initErr error
	// exitReason is an init error posted without the prefix: the reason
	// given if the handler exits before asking for an invocation.
	exitReason error
	once       sync.Once
	readyOne   sync.Once
	stuckOnce  sync.Once
}

type invocation struct {
	id       string
	event    []byte
	deadline time.Time
	trace    string
	client   string            // Lambda-Runtime-Client-Context, as the caller gave it
	result   chan lambdaResult // buffered 1
	tail     bool              // the caller asked for the log tail
	taken    time.Time         // when the handler took it
	timer    *time.Timer       // its deadline, from when it is taken
	log      []byte            // its output, the last MaxLogTail bytes, if tail
}

type logTailKey struct{}

// WithLogTail marks a context's invocation as one whose log tail is
// answered (X-Amz-Log-Result). Only the Lambda API sets it, for a signed
// caller: a header would let anyone who may call a function through
// /function/ read its output.
func WithLogTail(ctx context.Context) context.Context {
	return context.WithValue(ctx, logTailKey{}, true)
}

// WantsLogTail reports whether ctx asks for the log tail.
func WantsLogTail(ctx context.Context) bool {
	v, _ := ctx.Value(logTailKey{}).(bool)
	return v
}

// MaxLogTail is how much of an invocation's log X-Amz-Log-Result carries,
// as Lambda: the last 4 KB.
const MaxLogTail = 4 << 10

// Output records a line the handler wrote, for the log tail of the
// invocation it is at.
func (l *Lambda) Output(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if inv := l.logging; inv != nil && inv.tail {
		inv.log = appendTail(inv.log, line+"\n")
	}
}

// appendTail appends s to b, keeping the last MaxLogTail bytes.
func appendTail(b []byte, s string) []byte {
	b = append(b, s...)
	if over := len(b) - MaxLogTail; over > 0 {
		b = append(b[:0], b[over:]...)
	}
	return b
}

// logTail is the invocation's log as Lambda's X-Amz-Log-Result has it:
// START, the handler's lines, END and REPORT, the last MaxLogTail bytes,
// base64.
func (l *Lambda) logTail(inv *invocation, now time.Time) string {
	d := now.Sub(inv.taken)
	var b []byte
	version := l.Version
	if version == "" {
		version = "$LATEST"
	}
	b = appendTail(b, "START RequestId: "+inv.id+" Version: "+version+"\n")
	b = appendTail(b, string(inv.log))
	b = appendTail(b, "END RequestId: "+inv.id+"\n")
	b = appendTail(b, fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\t\n",
		inv.id, float64(d.Microseconds())/1000, (d+time.Millisecond-1).Milliseconds(), l.MemoryMiB))
	return base64.StdEncoding.EncodeToString(b)
}

type lambdaResult struct {
	status int
	header http.Header
	body   []byte
}

// NewLambda listens on a loopback port; RuntimeAPI is what the handler's
// AWS_LAMBDA_RUNTIME_API must be.
func NewLambda(arn string, timeout time.Duration) (*Lambda, error) {
	return NewLambdaOn("127.0.0.1", arn, timeout)
}

// NewLambdaOn listens on a port of host: an address the handler reaches
// (a container reaches its bridge network's gateway).
func NewLambdaOn(host, arn string, timeout time.Duration) (*Lambda, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	l := &Lambda{ARN: arn, Timeout: timeout, prefix: "/" + randomHex(16), ln: ln,
		ready: make(chan struct{}), closed: make(chan struct{}), conns: map[*apiConn]struct{}{}}
	go l.serve()
	return l, nil
}

// RuntimeAPI is the value of AWS_LAMBDA_RUNTIME_API: host:port and the
// path prefix the API is served under (runtime clients join it with
// "/2018-06-01/runtime/...").
func (l *Lambda) RuntimeAPI() string { return l.ln.Addr().String() + l.prefix }

func (l *Lambda) isReady() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// Ready is closed when the handler first asks for an invocation.
func (l *Lambda) Ready() <-chan struct{} { return l.ready }

// InitError is what the handler reported to /runtime/init/error, if it did.
func (l *Lambda) InitError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.initErr
}

func (l *Lambda) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// Close stops serving the API; an invocation in flight fails, and so do
// those waiting for the handler.
func (l *Lambda) Close() {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.closed)
		l.ln.Close()
		cur, queued, w := l.current, l.queue, l.waiter
		l.current, l.queue, l.waiter = nil, nil, nil
		conns := make([]*apiConn, 0, len(l.conns))
		for c := range l.conns {
			conns = append(conns, c)
		}
		l.mu.Unlock()
		if w != nil {
			close(w.done)
		}
		if cur != nil {
			cur.finish(lambdaError(http.StatusBadGateway, "Runtime.ExitError", "the handler's process ended before it answered"))
		}
		for _, inv := range queued {
			inv.finish(lambdaError(http.StatusBadGateway, "Runtime.ExitError", "the handler's process has ended"))
		}
		for _, c := range conns {
			c.c.Close()
		}
	})
}

// RoundTrip runs one invocation: it waits until the handler takes the
// event, then for its answer, or until req's context ends.
func (l *Lambda) RoundTrip(req *http.Request) (*http.Response, error) {
	var event []byte
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, MaxLambdaPayload+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > MaxLambdaPayload {
			return lambdaError(http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException",
				fmt.Sprintf("the event is over %d bytes, Lambda's limit for a synchronous invocation", MaxLambdaPayload)).response(req), nil
		}
		event = b
	}
	if len(event) == 0 {
		event = []byte("{}") // Lambda's event when the payload is empty
	}
	inv := &invocation{id: requestID(req.Header.Get("X-Call-Id")), event: event, deadline: time.Now().Add(l.Timeout),
		trace: traceHeader(req.Header.Get("X-Amzn-Trace-Id")), result: make(chan lambdaResult, 1),
		tail: WantsLogTail(req.Context())}
	if dl, ok := req.Context().Deadline(); ok && dl.Before(inv.deadline) {
		inv.deadline = dl
	}
	if cc := req.Header.Get("X-Amz-Client-Context"); cc != "" {
		if b, err := base64.StdEncoding.DecodeString(cc); err == nil {
			inv.client = string(b)
		}
	}
	if err := l.InitError(); err != nil {
		return lambdaError(http.StatusBadGateway, "Runtime.InitError", err.Error()).response(req), nil
	}
	if !l.handOver(inv) {
		return lambdaError(http.StatusBadGateway, "Runtime.ExitError", "the handler's process has ended").response(req), nil
	}
	select {
	case r := <-inv.result:
		return r.response(req), nil
	case <-l.closed:
		// Close answers what it finds; this may have been between hands.
		select {
		case r := <-inv.result:
			return r.response(req), nil
		default:
			return lambdaError(http.StatusBadGateway, "Runtime.ExitError", "the handler's process ended before it answered").response(req), nil
		}
	case <-req.Context().Done():
		select {
		case r := <-inv.result: // the answer came with the deadline
			return r.response(req), nil
		default:
		}
		if l.unqueue(inv) {
			// Never handed to the handler: nothing more to do.
			return nil, req.Context().Err()
		}
		if errors.Is(req.Context().Err(), context.DeadlineExceeded) {
			l.stuck(inv)
		}
		// A caller that went away leaves the handler to finish: its
		// answer is taken (and dropped) when it comes, and the next
		// invocation waits for it, as one at a time must, until the
		// invocation's own deadline (see take).
		return nil, req.Context().Err()
	}
}

// deadlineGrace is how long after an invocation's deadline a handler still
// at it is replaced when no caller waits for it.
const deadlineGrace = 250 * time.Millisecond

// stuck replaces an instance whose handler is still at inv past its
// deadline: Lambda resets the sandbox; here the API closes, so the
// instance takes nothing more, and Stuck stops it (once).
func (l *Lambda) stuck(inv *invocation) {
	l.mu.Lock()
	still := l.current == inv
	l.mu.Unlock()
	if !still {
		return
	}
	l.Close()
	l.stuckOnce.Do(func() {
		if l.Stuck != nil {
			l.Stuck()
		}
	})
}

// handOver gives inv to the handler's parked /next, writing it from this
// goroutine, or queues it for the handler's next ask. It reports false
// when the API is closed.
func (l *Lambda) handOver(inv *invocation) bool {
	for {
		l.mu.Lock()
		if l.isClosed() {
			l.mu.Unlock()
			return false
		}
		w := l.waiter
		if w == nil || len(l.queue) > 0 {
			l.queue = append(l.queue, inv)
			l.mu.Unlock()
			return true
		}
		l.waiter = nil
		l.mu.Unlock()
		if l.take(inv, w) {
			return true
		}
		// That /next's connection is gone before the event reached it:
		// the handler asks again on another; try again.
	}
}

// unqueue removes inv from the queue; false if it was handed over.
func (l *Lambda) unqueue(inv *invocation) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.queue {
		if x == inv {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			return true
		}
	}
	return false
}

// take makes inv the invocation in progress and writes it to w's
// connection, as the answer to its /next; false if the write failed (inv
// is then not in progress).
func (l *Lambda) take(inv *invocation, w *waiter) bool {
	if inv.tail && l.Drain != nil {
		// What an earlier invocation wrote is not this one's log.
		l.Drain()
	}
	l.mu.Lock()
	l.current, l.logging = inv, inv
	inv.taken = time.Now()
	// The deadline holds whether or not the caller still waits: a
	// handler still at it then is replaced. (A caller that waits acts at
	// the deadline itself; this is for one that went away, a moment
	// later.)
	inv.timer = time.AfterFunc(time.Until(inv.deadline)+deadlineGrace, func() {
		l.mu.Lock()
		still := l.current == inv
		l.mu.Unlock()
		if still {
			inv.finish(lambdaError(http.StatusGatewayTimeout, "Sandbox.Timedout",
				fmt.Sprintf("Task timed out after %.2f seconds", inv.deadline.Sub(inv.taken).Seconds())))
			l.stuck(inv)
		}
	})
	l.mu.Unlock()
	h := [][2]string{{"Content-Type", "application/json"}, {"Lambda-Runtime-Aws-Request-Id", inv.id},
		{"Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10)},
		{"Lambda-Runtime-Invoked-Function-Arn", l.ARN}, {"Lambda-Runtime-Trace-Id", inv.trace}}
	if inv.client != "" {
		h = append(h, [2]string{"Lambda-Runtime-Client-Context", inv.client})
	}
	err := w.conn.write(apiResponse{status: http.StatusOK, header: h, body: inv.event}, true)
	if err != nil {
		l.mu.Lock()
		if l.current == inv {
			l.current, l.logging = nil, nil
		}
		inv.timer.Stop()
		l.mu.Unlock()
		w.conn.c.Close()
	}
	w.sent = err == nil
	close(w.done)
	return err == nil
}

func (inv *invocation) finish(r lambdaResult) {
	if inv.timer != nil {
		inv.timer.Stop()
	}
	select {
	case inv.result <- r:
	default: // answered already
	}
}

func (r lambdaResult) response(req *http.Request) *http.Response {
	h := r.header
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Length", strconv.Itoa(len(r.body)))
	return &http.Response{StatusCode: r.status, Status: fmt.Sprintf("%d %s", r.status, http.StatusText(r.status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Body: io.NopCloser(bytes.NewReader(r.body)),
		ContentLength: int64(len(r.body)), Request: req}
}

// lambdaError is an answer carrying Lambda's error JSON.
func lambdaError(status int, typ, msg string) lambdaResult {
	b, _ := json.Marshal(map[string]string{"errorMessage": msg, "errorType": typ})
	h := http.Header{"Content-Type": {"application/json"}, "X-Amz-Function-Error": {"Unhandled"}}
	return lambdaResult{status: status, header: h, body: b}
}

// route answers one request of the handler's process; a /next is parked
// instead (the waiter returned), to be answered when an invocation comes.
func (l *Lambda) route(ac *apiConn, r *http.Request) (apiResponse, *waiter) {
	rest, ok := strings.CutPrefix(r.URL.Path, l.prefix+"/"+LambdaAPIVersion+"/runtime/")
	if ok && !ac.handler {
		l.mu.Lock()
		ac.handler = true // it knows the prefix: it is the handler's
		l.mu.Unlock()
	}
	if !ok && r.URL.Path == "/"+LambdaAPIVersion+"/runtime/init/error" && r.Method == http.MethodPost && !l.isReady() {
		// The Node runtime interface client posts its init error with a
		// client of its own that drops the prefix. Before the first /next
		// it is kept without one, but only as the reason of a start whose
		// handler then exits: from anyone, it can fail nothing.
		l.keepInitError(r, &l.exitReason)
		return acceptedResponse, nil
	}
	if !ok {
		return apiErrorResponse(http.StatusNotFound, "NotFound", "no such Runtime API path: "+r.URL.Path), nil
	}
	switch {
	case rest == "invocation/next" && r.Method == http.MethodGet:
		return apiResponse{}, l.next(ac)
	case rest == "init/error" && r.Method == http.MethodPost:
		l.keepInitError(r, &l.initErr)
		return acceptedResponse, nil
	case strings.HasPrefix(rest, "invocation/") && r.Method == http.MethodPost:
		id, what, _ := strings.Cut(strings.TrimPrefix(rest, "invocation/"), "/")
		if what != "response" && what != "error" {
			return apiErrorResponse(http.StatusNotFound, "NotFound", "no such Runtime API path: "+r.URL.Path), nil
		}
		return l.answer(r, id, what == "error"), nil
	}
	return apiErrorResponse(http.StatusNotFound, "NotFound", "no such Runtime API route: "+r.Method+" "+r.URL.Path), nil
}

// keepInitError keeps the init error r posts in *into, the first one only.
func (l *Lambda) keepInitError(r *http.Request, into *error) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	msg := errorMessage(body, r.Header.Get("Lambda-Runtime-Function-Error-Type"))
	l.mu.Lock()
	defer l.mu.Unlock()
	if *into == nil {
		*into = fmt.Errorf("the handler failed to initialize: %s", msg)
	}
}

// next parks the handler's ask for an invocation, or hands it the one
// waiting.
func (l *Lambda) next(ac *apiConn) *waiter {
	l.readyOne.Do(func() { close(l.ready) })
	w := &waiter{conn: ac, done: make(chan struct{})}
	l.mu.Lock()
	if cur := l.current; cur != nil {
		// Asking for the next one answers nothing: Lambda takes it as the
		// end of the invocation without a response.
		l.current = nil
		cur.finish(lambdaError(http.StatusBadGateway, "Runtime.NoResponse", "the handler asked for the next invocation without answering this one"))
	}
	if l.isClosed() {
		l.mu.Unlock()
		close(w.done)
		return w
	}
	if len(l.queue) > 0 {
		inv := l.queue[0]
		l.queue = l.queue[1:]
		l.mu.Unlock()
		if !l.take(inv, w) {
			inv.finish(lambdaError(http.StatusBadGateway, "Runtime.ExitError", "the handler's connection broke as the event was handed to it"))
		}
		return w
	}
	old := l.waiter
	l.waiter = w
	l.mu.Unlock()
	if old != nil {
		// An earlier ask on another connection: the handler gave up on it.
		close(old.done)
	}
	return w
}

// answer takes the handler's response or error for invocation id.
func (l *Lambda) answer(r *http.Request, id string, failed bool) apiResponse {
	l.mu.Lock()
	inv := l.current
	if inv == nil || inv.id != id {
		l.mu.Unlock()
		return apiErrorResponse(http.StatusBadRequest, "InvalidRequestID", fmt.Sprintf("%q is not the invocation in progress", id))
	}
	l.current = nil
	l.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxLambdaPayload+1))
	switch {
	case err != nil:
		inv.finish(lambdaError(http.StatusBadGateway, "Runtime.ResponseError", "reading the handler's answer: "+err.Error()))
		return apiErrorResponse(http.StatusBadRequest, "InvalidRequest", err.Error())
	case len(body) > MaxLambdaPayload:
		inv.finish(lambdaError(http.StatusBadGateway, "Function.ResponseSizeTooLarge", fmt.Sprintf("the response is over %d bytes", MaxLambdaPayload)))
		return apiErrorResponse(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("the response is over %d bytes", MaxLambdaPayload))
	}
	var res lambdaResult
	if failed {
		res = lambdaError(http.StatusInternalServerError, "", "")
		if !json.Valid(body) {
			b, _ := json.Marshal(map[string]string{"errorMessage": string(body), "errorType": r.Header.Get("Lambda-Runtime-Function-Error-Type")})
			body = b
		}
		res.body = body
	} else {
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/json"
		}
		res = lambdaResult{status: http.StatusOK, header: http.Header{"Content-Type": {ct}}, body: body}
	}
	if inv.tail {
		// What the handler wrote before answering may still be on its way.
		if l.Drain != nil {
			l.Drain()
		}
		l.mu.Lock()
		res.header.Set("X-Amz-Log-Result", l.logTail(inv, time.Now()))
		l.mu.Unlock()
	}
	l.mu.Lock()
	if l.logging == inv {
		l.logging = nil
	}
	l.mu.Unlock()
	inv.finish(res)
	// The caller's goroutine, woken by finish, waits on this P while this
	// one writes the 202 (a loopback write that wakes the handler, tens
	// of µs): yield it the P, so that the answer goes on its way first and
	// the 202 is written by another (measured: 86 → 50 µs from the
	// answer's arrival to the caller's goroutine running).
	runtime.Gosched()
	return acceptedResponse
}

// errorMessage reads the message of an error body in Lambda's shape.
func errorMessage(body []byte, typ string) string {
	var e struct{ ErrorMessage, ErrorType string }
	if json.Unmarshal(body, &e) == nil && e.ErrorMessage != "" {
		if e.ErrorType != "" {
			return e.ErrorType + ": " + e.ErrorMessage
		}
		return e.ErrorMessage
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	if typ != "" {
		return typ
	}
	return "no reason given"
}

// WaitLambdaReady waits until the handler asks for its first invocation,
// reports an init error, or exited (done closed), or ctx ends.
func WaitLambdaReady(ctx context.Context, l *Lambda, exited <-chan struct{}) error {
	select {
	case <-l.Ready():
		if err := l.InitError(); err != nil {
			return err
		}
		return nil
	case <-exited:
		if err := l.InitError(); err != nil {
			return err
		}
		l.mu.Lock()
		reason := l.exitReason
		l.mu.Unlock()
		if reason != nil {
			return fmt.Errorf("%w: %w", ErrExited, reason)
		}
		return ErrExited
	case <-ctx.Done():
		return fmt.Errorf("the handler did not ask for an invocation (GET /%s/runtime/invocation/next at AWS_LAMBDA_RUNTIME_API) before the start deadline: %w",
			LambdaAPIVersion, ctx.Err())
	}
}

// ExitReason is " (REASON)" when an ErrExited from WaitLambdaReady carries
// the init error the handler posted before it exited, else "".
func ExitReason(err error) string {
	if msg, ok := strings.CutPrefix(err.Error(), ErrExited.Error()+": "); ok {
		return " (" + msg + ")"
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// requestID is an invocation's request id: the gateway's call id (which
// the Lambda API answers as X-Amz-Request-Id, and an async call keeps
// through its retries, as Lambda's), if it can stand in a Runtime API
// path, else a new one.
func requestID(callID string) string {
	if callID != "" && len(callID) <= 128 && strings.Trim(callID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return callID
	}
	return newRequestID()
}

// newRequestID is a version 4 UUID, as Lambda's request ids.
func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// traceHeader keeps a caller's X-Ray trace header, or makes a root one.
func traceHeader(given string) string {
	if given != "" {
		return given
	}
	return fmt.Sprintf("Root=1-%08x-%s;Sampled=0", time.Now().Unix(), randomHex(12))
}
