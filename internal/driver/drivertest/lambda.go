package drivertest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/function"
	"nimbus/internal/watchdog"
)

// testLambda runs an unmodified aws-lambda-go handler (lambda.Start,
// built as bootstrap) through the Runtime API: the event in, the answer
// out, Lambda's environment and context, errors and panics in Lambda's
// shape, a timeout that replaces the instance, an exit at init.
func testLambda(t *testing.T, fx Fixture) {
	if fx.Lambda == nil {
		t.Skip("the fixture runs no Lambda handler")
	}
	d := fx.Driver
	fn, open := fx.Lambda(t)
	fn.Name, fn.Protocol, fn.Timeout = "lam", function.ProtocolLambda, function.Duration(5*time.Second)
	fn.Env = map[string]string{"GREETING": "hi"}
	fn = fn.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	if fn.Scale.MaxConcurrency != 1 {
		t.Fatalf("a lambda function defaults to maxConcurrency %d, want 1", fn.Scale.MaxConcurrency)
	}
	var mu sync.Mutex
	var logs []string
	start := func(f function.Function) (driver.Instance, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return d.Start(ctx, driver.Spec{Function: f, Revision: 7, OpenPackage: open, Log: func(_, stream, text string) {
			mu.Lock()
			defer mu.Unlock()
			logs = append(logs, stream+": "+text)
		}})
	}
	inst, err := start(fn)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	if inst.Addr() != "" || inst.Transport() == nil {
		t.Fatalf("a lambda instance is reached through its transport: addr %q", inst.Addr())
	}
	call := func(ctx context.Context, body string) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://lam/", strings.NewReader(body))
		resp, err := inst.Transport().RoundTrip(req)
		if err != nil {
			return nil, "", err
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	resp, body, err := call(context.Background(), `{"name":"nimbus"}`)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("invoke: %v %v %s", err, resp, body)
	}
	var r struct {
		Hello, RequestID, ARN string
		RemainingMs           int64
		PID                   int
		Env                   map[string]string
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if r.Hello != "nimbus" || !uuid.MatchString(r.RequestID) || r.ARN != "arn:aws:lambda:us-east-1:000000000000:function:lam" ||
		r.RemainingMs <= 3000 || r.RemainingMs > 5000 {
		t.Fatalf("the handler saw %+v", r)
	}
	for k, want := range map[string]string{"AWS_LAMBDA_FUNCTION_NAME": "lam", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "_HANDLER": "bootstrap", "AWS_REGION": "us-east-1", "GREETING": "hi"} {
		if r.Env[k] != want {
			t.Errorf("%s=%q, want %q", k, r.Env[k], want)
		}
	}
	if api := regexp.MustCompile(`^[0-9.]+:[0-9]+/[0-9a-f]{32}$`); r.Env["LAMBDA_TASK_ROOT"] == "" || !api.MatchString(r.Env["AWS_LAMBDA_RUNTIME_API"]) {
		t.Errorf("task root %q, runtime API %q", r.Env["LAMBDA_TASK_ROOT"], r.Env["AWS_LAMBDA_RUNTIME_API"])
	}
	if _, ok := r.Env[Canary]; ok {
		t.Error("the handler sees nimbus's environment")
	}
	// A log tail asked for (the Lambda API's X-Amz-Log-Type: Tail): the
	// invocation's log, as Lambda's X-Amz-Log-Result, base64: START, what
	// the handler wrote, END, REPORT. A header asks for nothing.
	req, _ := http.NewRequestWithContext(watchdog.WithLogTail(context.Background()), "POST", "http://lam/", strings.NewReader(`{"name":"tail"}`))
	resp, err = inst.Transport().RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("invoke with a log tail: %v %v", err, resp)
	}
	tail, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Amz-Log-Result"))
	id := regexp.MustCompile(`^START RequestId: ([0-9a-f-]{36}) Version: \$LATEST\nhandled  tail\nEND RequestId: ([0-9a-f-]{36})\nREPORT RequestId: ([0-9a-f-]{36})\tDuration: [0-9.]+ ms\tBilled Duration: [0-9]+ ms\tMemory Size: 128 MB\t\n$`).FindStringSubmatch(string(tail))
	if err != nil || id == nil || id[1] != id[2] || id[2] != id[3] {
		t.Fatalf("log tail %q (%v)", tail, err)
	}
	if resp, _, _ := call(context.Background(), `{}`); resp.Header.Get("X-Amz-Log-Result") != "" {
		t.Fatal("a log tail nobody asked for")
	}
	hreq, _ := http.NewRequest("POST", "http://lam/", strings.NewReader(`{}`))
	hreq.Header.Set("X-Amz-Log-Type", "Tail")
	if resp, err := inst.Transport().RoundTrip(hreq); err != nil || resp.Header.Get("X-Amz-Log-Result") != "" {
		t.Fatalf("a log tail for a header: %v %v", err, resp)
	}
	// Another request id each time; an empty body is the event {}.
	_, body2, _ := call(context.Background(), "")
	if !strings.Contains(body2, `"hello":""`) || strings.Contains(body2, r.RequestID) {
		t.Fatalf("second invocation: %s", body2)
	}
	// A handler error: 500, Lambda's error JSON, X-Amz-Function-Error.
	resp, body, _ = call(context.Background(), `{"op":"fail","name":"x"}`)
	if resp.StatusCode != 500 || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" ||
		!strings.Contains(body, `"errorMessage":"asked to fail: x"`) || !strings.Contains(body, `"errorType"`) {
		t.Fatalf("handler error: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// The runtime keeps serving after an error.
	if resp, _, _ = call(context.Background(), `{"name":"again"}`); resp.StatusCode != 200 {
		t.Fatalf("after an error: %d", resp.StatusCode)
	}
	// A caller that goes away leaves the handler to finish: the instance
	// stays, and the next invocation is answered after it.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, _, err = call(ctx, `{"op":"sleep","ms":500}`); err == nil {
		t.Fatal("an abandoned invocation answered")
	}
	if resp, body, err := call(context.Background(), `{"name":"after"}`); err != nil || resp.StatusCode != 200 || !strings.Contains(body, `"hello":"after"`) {
		t.Fatalf("after a caller went away: %v %v %s", err, resp, body)
	}
	select {
	case <-inst.Done():
		t.Fatal("a caller going away replaced the instance")
	default:
	}
	// A handler still at it past its deadline is replaced.
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _, err = call(ctx, `{"op":"hang","ms":30000}`)
	cancel()
	if err == nil {
		t.Fatal("an invocation past its deadline answered")
	}
	select {
	case <-inst.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the instance still runs after its invocation passed its deadline")
	}
	if resp, body, err := call(context.Background(), `{}`); err != nil || resp.StatusCode != 502 {
		t.Fatalf("the replaced instance took another invocation: %v %v %s", err, resp, body)
	}

	// A panic: Lambda's error shape; the process ends.
	inst, err = start(fn)
	if err != nil {
		t.Fatal(err)
	}
	resp, body, _ = call(context.Background(), `{"op":"panic"}`)
	if resp.StatusCode != 500 || !strings.Contains(body, "asked to panic") {
		t.Fatalf("panic: %d %s", resp.StatusCode, body)
	}
	inst.Stop(context.Background())

	// A handler that exits at init never becomes ready: the start fails
	// with its output.
	bad := fn
	bad.Env = map[string]string{"LAMBDAFN_EXIT_AT_INIT": "1"}
	if _, err := start(bad); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("a handler exiting at init: %v", err)
	}
	// A handler that never asks for an invocation fails its start, saying
	// so, by the start's deadline.
	never := fn
	never.Env = map[string]string{"LAMBDAFN_NEVER_ASK": "1"}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, err = d.Start(ctx, driver.Spec{Function: never, Revision: 7, OpenPackage: open})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "did not ask for an invocation") {
		t.Fatalf("a handler that never asks: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if all := strings.Join(logs, "\n"); !strings.Contains(all, "stdout: handled  nimbus") {
		t.Errorf("the handler's output is not in the logs:\n%s", all)
	}
}
