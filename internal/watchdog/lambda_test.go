package watchdog

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// runtimeCall is a request the handler's side makes to the Runtime API.
func runtimeCall(t *testing.T, l *Lambda, method, path, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+l.RuntimeAPI()+"/"+LambdaAPIVersion+"/runtime/"+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

type result struct {
	resp *http.Response
	body string
	err  error
}

func invoke(l *Lambda, body string, hdr ...string) chan result {
	return invokeCtx(context.Background(), l, body, hdr...)
}

func invokeCtx(ctx context.Context, l *Lambda, body string, hdr ...string) chan result {
	ch := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://fn/", strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := l.RoundTrip(req)
		r := result{resp: resp, err: err}
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			r.body = string(b)
		}
		ch <- r
	}()
	return ch
}

// TestLambdaRuntimeAPI plays the handler's side by hand: the documented
// headers, answers by request id, wrong ids and paths refused without
// changing anything, an init error, limits.
func TestLambdaRuntimeAPI(t *testing.T) {
	l, err := NewLambda("arn:aws:lambda:us-east-1:000000000000:function:f", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Without the instance's prefix nothing is served.
	host := strings.SplitN(l.RuntimeAPI(), "/", 2)[0]
	if resp, err := http.Get("http://" + host + "/" + LambdaAPIVersion + "/runtime/invocation/next"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("the API without its prefix: %v %v", resp, err)
	}

	got := invoke(l, `{"a":1}`, "X-Amz-Client-Context", "eyJjdXN0b20iOnsiayI6InYifX0=", "X-Amzn-Trace-Id", "Root=1-5e1b4151-5ac6c58f5b5daa6532e4a1e2")
	resp, event := runtimeCall(t, l, "GET", "invocation/next", "")
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	deadline := resp.Header.Get("Lambda-Runtime-Deadline-Ms")
	if resp.StatusCode != 200 || event != `{"a":1}` || id == "" || deadline == "" ||
		resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn") != "arn:aws:lambda:us-east-1:000000000000:function:f" ||
		resp.Header.Get("Lambda-Runtime-Trace-Id") != "Root=1-5e1b4151-5ac6c58f5b5daa6532e4a1e2" ||
		resp.Header.Get("Lambda-Runtime-Client-Context") != `{"custom":{"k":"v"}}` {
		t.Fatalf("next: %d %q %v", resp.StatusCode, event, resp.Header)
	}
	select {
	case <-l.Ready():
	default:
		t.Fatal("not ready after the first next")
	}
	// A wrong id, a wrong verb: refused, the invocation still waits.
	if resp, body := runtimeCall(t, l, "POST", "invocation/not-"+id+"/response", "x"); resp.StatusCode != 400 || !strings.Contains(body, "InvalidRequestID") {
		t.Fatalf("answer to a wrong id: %d %s", resp.StatusCode, body)
	}
	if resp, _ := runtimeCall(t, l, "POST", "invocation/"+id+"/bogus", "x"); resp.StatusCode != 404 {
		t.Fatalf("a bogus path: %d", resp.StatusCode)
	}
	select {
	case r := <-got:
		t.Fatalf("a refused answer answered the caller: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if resp, _ := runtimeCall(t, l, "POST", "invocation/"+id+"/response", `{"ok":true}`); resp.StatusCode != 202 {
		t.Fatalf("response: %d", resp.StatusCode)
	}
	r := <-got
	if r.err != nil || r.resp.StatusCode != 200 || r.body != `{"ok":true}` {
		t.Fatalf("the caller got %+v", r)
	}
	// The same id again: it is over.
	if resp, _ := runtimeCall(t, l, "POST", "invocation/"+id+"/response", "again"); resp.StatusCode != 400 {
		t.Fatalf("a second answer: %d", resp.StatusCode)
	}

	// An error that is not JSON is wrapped in Lambda's shape.
	got = invoke(l, "")
	resp, event = runtimeCall(t, l, "GET", "invocation/next", "")
	if event != "{}" {
		t.Fatalf("an empty payload's event: %q", event)
	}
	id = resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	req, _ := http.NewRequest("POST", "http://"+l.RuntimeAPI()+"/"+LambdaAPIVersion+"/runtime/invocation/"+id+"/error", strings.NewReader("boom"))
	req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.Crash")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 202 {
		t.Fatalf("error: %v %v", resp, err)
	}
	if r := <-got; r.resp.StatusCode != 500 || r.resp.Header.Get("X-Amz-Function-Error") != "Unhandled" ||
		!strings.Contains(r.body, `"errorMessage":"boom"`) || !strings.Contains(r.body, `"errorType":"Runtime.Crash"`) {
		t.Fatalf("an error answer: %d %s", r.resp.StatusCode, r.body)
	}

	// An event over the limit never reaches the handler.
	r = <-invoke(l, strings.Repeat("x", MaxLambdaPayload+1))
	if r.resp.StatusCode != 413 || !strings.Contains(r.body, "RequestEntityTooLargeException") {
		t.Fatalf("a huge event: %d %s", r.resp.StatusCode, r.body)
	}

	// An init error fails what comes next, in words.
	if resp, _ := runtimeCall(t, l, "POST", "init/error", `{"errorMessage":"no config","errorType":"Runtime.ConfigError"}`); resp.StatusCode != 202 {
		t.Fatalf("init error: %d", resp.StatusCode)
	}
	r = <-invoke(l, "{}")
	if r.resp.StatusCode != 502 || !strings.Contains(r.body, "Runtime.ConfigError: no config") {
		t.Fatalf("after an init error: %d %s", r.resp.StatusCode, r.body)
	}
	if err := WaitLambdaReady(context.Background(), l, nil); err == nil || !strings.Contains(err.Error(), "no config") {
		t.Fatalf("ready after an init error: %v", err)
	}
}

// TestLambdaCloseFailsInFlight: an instance that stops answers its
// invocation in flight with a 502, and a handler waiting for the next one
// is told the instance is stopping.
func TestLambdaCloseFailsInFlight(t *testing.T) {
	l, err := NewLambda("arn", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := invoke(l, "{}")
	runtimeCall(t, l, "GET", "invocation/next", "")
	l.Close()
	if r := <-got; r.err != nil || r.resp.StatusCode != 502 || !strings.Contains(r.body, "Runtime.ExitError") {
		t.Fatalf("in flight at close: %+v", r)
	}
	if r := <-invoke(l, "{}"); r.resp.StatusCode != 502 {
		t.Fatalf("after close: %+v", r)
	}
}

// TestLambdaLogTail: the tail holds only the invocation's own lines, is cut
// to its last MaxLogTail bytes with the REPORT line kept, and Drain is
// asked for the output before the handoff and before the cut.
func TestLambdaLogTail(t *testing.T) {
	l, err := NewLambda("arn:aws:lambda:us-east-1:000000000000:function:f", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.MemoryMiB = 256
	drains := 0
	l.Drain = func() { drains++ }
	res := invokeCtx(WithLogTail(context.Background()), l, `{}`)
	l.Output("before the invocation") // no invocation yet: nobody's
	resp, _ := runtimeCall(t, l, "GET", "invocation/next", "")
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	for i := range 200 {
		l.Output(strings.Repeat("x", 40) + " line " + string(rune('a'+i%26)))
	}
	l.Output("last line")
	runtimeCall(t, l, "POST", "invocation/"+id+"/response", `"ok"`)
	r := <-res
	if r.err != nil || r.resp.StatusCode != 200 {
		t.Fatalf("%v %v", r.err, r.resp)
	}
	tail, err := base64.StdEncoding.DecodeString(r.resp.Header.Get("X-Amz-Log-Result"))
	if err != nil || len(tail) > MaxLogTail || len(tail) < MaxLogTail-100 {
		t.Fatalf("tail of %d bytes (%v), want about %d", len(tail), err, MaxLogTail)
	}
	s := string(tail)
	if strings.Contains(s, "before the invocation") || strings.Contains(s, "START") ||
		!strings.Contains(s, "last line\nEND RequestId: "+id+"\nREPORT RequestId: "+id+"\tDuration: ") ||
		!strings.HasSuffix(s, "\tMemory Size: 256 MB\t\n") {
		t.Fatalf("tail:\n%s", s)
	}
	if drains != 2 {
		t.Fatalf("Drain called %d times, want 2 (at the handoff and before the cut)", drains)
	}
	// Without the header: no tail, and no drain.
	res = invoke(l, `{}`)
	resp, _ = runtimeCall(t, l, "GET", "invocation/next", "")
	l.Output("untold")
	runtimeCall(t, l, "POST", "invocation/"+resp.Header.Get("Lambda-Runtime-Aws-Request-Id")+"/response", `"ok"`)
	if r := <-res; r.resp.Header.Get("X-Amz-Log-Result") != "" || drains != 2 {
		t.Fatalf("a tail nobody asked for: %v, %d drains", r.resp.Header, drains)
	}
}

// TestLambdaInitErrorWithoutPrefix: before the handler first asks for an
// invocation, an init error is taken without the path prefix (the Node
// runtime interface client drops it); after, nothing is.
func TestLambdaInitErrorWithoutPrefix(t *testing.T) {
	l, err := NewLambda("arn", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	host := strings.SplitN(l.RuntimeAPI(), "/", 2)[0]
	post := func() int {
		resp, err := http.Post("http://"+host+"/"+LambdaAPIVersion+"/runtime/init/error", "application/json",
			strings.NewReader(`{"errorMessage":"Cannot find module 'missing'","errorType":"Runtime.ImportModuleError"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != 202 {
		t.Fatalf("an init error before ready: %d", code)
	}
	if err := WaitLambdaReady(context.Background(), l, closedChan()); !errors.Is(err, ErrExited) || !strings.Contains(ExitReason(err), "Runtime.ImportModuleError: Cannot find module") {
		t.Fatalf("the start's error: %v", err)
	}
	// From anyone, it fails nothing: a handler that goes on to ask is
	// served.
	if l.InitError() != nil {
		t.Fatalf("an unprefixed init error failed the API: %v", l.InitError())
	}
	res0 := invoke(l, `{}`)
	resp0, _ := runtimeCall(t, l, "GET", "invocation/next", "")
	runtimeCall(t, l, "POST", "invocation/"+resp0.Header.Get("Lambda-Runtime-Aws-Request-Id")+"/response", `"ok"`)
	if got := <-res0; got.err != nil || got.resp.StatusCode != 200 {
		t.Fatalf("an invocation after an unprefixed init error: %v %v", got.err, got.resp)
	}

	l2, _ := NewLambda("arn", time.Second)
	defer l2.Close()
	res := invoke(l2, "{}")
	resp, _ := runtimeCall(t, l2, "GET", "invocation/next", "")
	host = strings.SplitN(l2.RuntimeAPI(), "/", 2)[0]
	r, err := http.Post("http://"+host+"/"+LambdaAPIVersion+"/runtime/init/error", "application/json", strings.NewReader(`{}`))
	if err != nil || r.StatusCode != 404 || l2.InitError() != nil {
		t.Fatalf("an init error without the prefix after ready: %v %v %v", r, err, l2.InitError())
	}
	runtimeCall(t, l2, "POST", "invocation/"+resp.Header.Get("Lambda-Runtime-Aws-Request-Id")+"/response", `"ok"`)
	if got := <-res; got.resp.StatusCode != 200 {
		t.Fatalf("the invocation after: %d", got.resp.StatusCode)
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// TestLambdaAPIConnections: the API's own HTTP server answers a malformed
// request with a 400 and closes; holds at most maxAPIConns connections;
// answers Expect: 100-continue; keeps a connection alive unless asked to
// close it.
func TestLambdaAPIConnections(t *testing.T) {
	l, err := NewLambda("arn", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	host := strings.SplitN(l.RuntimeAPI(), "/", 2)[0]
	prefix := "/" + strings.SplitN(l.RuntimeAPI(), "/", 2)[1]
	dial := func() net.Conn {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	c := dial()
	io.WriteString(c, "GARBAGE\x00\r\n\r\n")
	b, _ := io.ReadAll(c) // the server closes after answering
	if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") || !strings.Contains(string(b), "InvalidRequest") {
		t.Fatalf("a malformed request: %q", b)
	}
	c.Close()

	// A head without end is cut at the request's bound, not kept
	// growing in memory.
	c = dial()
	go func() {
		io.WriteString(c, "GET "+prefix+"/x HTTP/1.1\r\nHost: x\r\nX-A: ")
		chunk := strings.Repeat("a", 64<<10)
		for range (maxAPIRequest >> 16) + 2 {
			if _, err := io.WriteString(c, chunk); err != nil {
				return // the server closed
			}
		}
	}()
	b, _ = io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
		t.Fatalf("an endless head: %.200q", b)
	}
	c.Close()

	// Expect: 100-continue, then the body; the connection stays open for
	// the next request, until one asks to close.
	c = dial()
	defer c.Close()
	io.WriteString(c, "POST "+prefix+"/"+LambdaAPIVersion+"/runtime/invocation/nope/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("no 100 Continue: %q", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "{}")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("an unknown id after 100-continue: %v %v", resp, err)
	}
	io.ReadAll(resp.Body)
	io.WriteString(c, "GET "+prefix+"/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("a second request on the connection: %v %v", resp, err)
	}

	// Idle connections of another process cannot lock the handler out:
	// past maxAPIConns, one that never made a request under the prefix
	// is dropped for the new one, which is served.
	var held []net.Conn
	for range maxAPIConns + 2 {
		held = append(held, dial())
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	h := dial()
	defer h.Close()
	io.WriteString(h, "GET "+prefix+"/nope HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(h), nil); err != nil || resp.StatusCode != 404 {
		t.Fatalf("the handler's connection after %d idle ones: %v %v", len(held), resp, err)
	}
	var dropped []int
	for i, c := range held {
		// The drops came before h was served: their end is there to read.
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			dropped = append(dropped, i)
		}
	}
	// The oldest go first (a handler's new connection is the newest).
	if fmt.Sprint(dropped) != "[0 1 2]" {
		t.Fatalf("idle connections dropped: %v, want the three oldest [0 1 2] (%d held, cap %d)", dropped, len(held)+1, maxAPIConns)
	}
}

// TestLambdaDeadlineWithoutCaller: a caller that goes away leaves the
// handler to finish, but not past the invocation's deadline: a handler
// still at it then is replaced (Stuck), and nothing more is taken.
func TestLambdaDeadlineWithoutCaller(t *testing.T) {
	l, err := NewLambda("arn", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stuck := make(chan struct{}, 2)
	l.Stuck = func() { stuck <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	res := invokeCtx(ctx, l, `{}`)
	resp, _ := runtimeCall(t, l, "GET", "invocation/next", "")
	if resp.StatusCode != 200 {
		t.Fatalf("next: %d", resp.StatusCode)
	}
	cancel() // the caller leaves; the handler never answers
	if r := <-res; r.err == nil {
		t.Fatal("an abandoned invocation answered its caller")
	}
	select {
	case <-stuck:
	case <-time.After(5 * time.Second):
		t.Fatal("a handler past its deadline was not replaced after its caller left")
	}
	if r := <-invoke(l, `{}`); r.err != nil || r.resp.StatusCode != 502 {
		t.Fatalf("the replaced instance took another invocation: %v %v", r.err, r.resp)
	}
	select {
	case <-stuck:
		t.Fatal("Stuck called twice")
	case <-time.After(400 * time.Millisecond):
	}
}

// TestLambdaParkedNextClosed: a /next whose connection the handler closes
// is withdrawn, so the next event goes to the handler's new ask instead
// of into the closed one.
func TestLambdaParkedNextClosed(t *testing.T) {
	l, err := NewLambda("arn", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	host, prefix, _ := strings.Cut(l.RuntimeAPI(), "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /"+prefix+"/"+LambdaAPIVersion+"/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
	<-l.Ready()
	c.Close()
	// Wait until the ask is withdrawn (the API sees the close).
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		w := l.waiter
		l.mu.Unlock()
		if w == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed connection's ask is still parked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := invoke(l, `{"n":1}`)
	resp, body := runtimeCall(t, l, "GET", "invocation/next", "")
	if resp.StatusCode != 200 || body != `{"n":1}` {
		t.Fatalf("the new ask: %d %s", resp.StatusCode, body)
	}
	runtimeCall(t, l, "POST", "invocation/"+resp.Header.Get("Lambda-Runtime-Aws-Request-Id")+"/response", `"ok"`)
	if r := <-res; r.err != nil || r.resp.StatusCode != 200 {
		t.Fatalf("the invocation: %v %v", r.err, r.resp)
	}
}

// TestRequestIDIsTheCallID: the handler's request id is the gateway's
// call id (what the Lambda API answers as X-Amz-Request-Id), unless it
// could not stand in a Runtime API path.
func TestRequestIDIsTheCallID(t *testing.T) {
	if got := requestID("3f1c9a2e-0b7d-4c55-9e21-6a8b0c4d2f10"); got != "3f1c9a2e-0b7d-4c55-9e21-6a8b0c4d2f10" {
		t.Errorf("a call id: %q", got)
	}
	for _, bad := range []string{"", "a/b", "a b", strings.Repeat("x", 129), "id\x00"} {
		if got := requestID(bad); got == bad || len(got) != 36 {
			t.Errorf("%q: %q, want a new UUID", bad, got)
		}
	}
}
