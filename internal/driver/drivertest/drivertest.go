// Package drivertest is the conformance suite of driver.Driver. A driver's
// tests call Run with a fixture that runs the testfn program (in this
// package's testfn directory) on the driver's substrate.
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/driver"
	"nimbus/internal/function"
)

// Fixture tells the suite how to run testfn on a driver.
type Fixture struct {
	Driver driver.Driver
	// Function returns a spec that runs testfn with the given arguments and
	// protocol (its Name is set by the suite).
	Function func(protocol string, args ...string) function.Function
	// OpenPackage serves the spec's package, if the driver needs one.
	OpenPackage func(ctx context.Context, digest string) (io.ReadCloser, error)
	// Lambda returns a spec that runs lambdafn (an aws-lambda-go handler)
	// and what serves its package, if it has one; nil skips the Lambda
	// tests.
	Lambda func(t *testing.T) (function.Function, func(ctx context.Context, digest string) (io.ReadCloser, error))
}

// Canary is set in the test process's environment; no instance may see it.
const Canary = "NIMBUS_DRIVERTEST_CANARY"

// Logs collects what instances wrote.
type Logs struct {
	mu    sync.Mutex
	lines []string // "stream: text"
}

func (l *Logs) add(_, stream, text string) {
	l.mu.Lock()
	l.lines = append(l.lines, stream+": "+text)
	l.mu.Unlock()
}

// Has reports whether a line was logged.
func (l *Logs) Has(line string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if x == line {
			return true
		}
	}
	return false
}

// Run runs every conformance test.
func Run(t *testing.T, fx Fixture) {
	t.Setenv(Canary, "leaked")
	t.Run("HTTPReadyAndServes", func(t *testing.T) { testHTTP(t, fx) })
	t.Run("Environment", func(t *testing.T) { testEnv(t, fx) })
	t.Run("CrashIsReported", func(t *testing.T) { testCrash(t, fx) })
	t.Run("StartFailureSaysWhy", func(t *testing.T) { testStartFailure(t, fx) })
	t.Run("StopIsGraceful", func(t *testing.T) { testStop(t, fx) })
	t.Run("Stdio", func(t *testing.T) { testStdio(t, fx) })
	t.Run("StartCancelled", func(t *testing.T) { testCancelled(t, fx) })
	t.Run("SecretsAsFilesOnly", func(t *testing.T) { testSecrets(t, fx) })
	t.Run("CPUTime", func(t *testing.T) { testCPU(t, fx) })
	t.Run("LambdaHandler", func(t *testing.T) { testLambda(t, fx) })
}

// testCPU: an instance that can measure its CPU (driver.CPUMeter) counts
// the CPU a request burns.
func testCPU(t *testing.T, fx Fixture) {
	s, _ := spec(fx, "spin", function.ProtocolHTTP)
	inst := start(t, fx, s)
	m, ok := inst.(driver.CPUMeter)
	if !ok {
		t.Skip("the driver does not measure CPU")
	}
	ctx := context.Background()
	before, err := m.CPUTime(ctx)
	if err != nil {
		t.Skipf("CPU is not measured here: %v", err)
	}
	if code, _, err := Call(inst, "GET", "/spin?ms=300", ""); err != nil || code != 200 {
		t.Fatalf("spin: %d %v", code, err)
	}
	after, err := m.CPUTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if used := after - before; used < 290*time.Millisecond || used > 5*time.Second {
		t.Fatalf("300 ms of CPU spun counted as %s", used)
	}
}

func spec(fx Fixture, name, protocol string, args ...string) (driver.Spec, *Logs) {
	fn := fx.Function(protocol, args...)
	fn.Name = name
	fn.Env = map[string]string{"GREETING": "hello"}
	logs := &Logs{}
	return driver.Spec{Function: fn.WithDefaults(), Revision: 7, OpenPackage: fx.OpenPackage, Log: logs.add}, logs
}

func start(t *testing.T, fx Fixture, s driver.Spec) driver.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := fx.Driver.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inst.Stop(context.Background()) })
	return inst
}

// Call sends one request to an instance, through its transport if it has one.
func Call(inst driver.Instance, method, path, body string) (int, string, error) {
	rt := inst.Transport()
	url := "http://" + inst.Addr() + path
	if rt == nil {
		rt = http.DefaultTransport
	} else {
		url = "http://instance" + path
	}
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testHTTP(t *testing.T, fx Fixture) {
	s, logs := spec(fx, "echo", function.ProtocolHTTP)
	inst := start(t, fx, s)
	if inst.ID() == "" || inst.Addr() == "" || inst.Started().IsZero() {
		t.Fatalf("instance lacks id, addr or start time: %q %q", inst.ID(), inst.Addr())
	}
	// Ready means it answers at once, with no retry.
	code, body, err := Call(inst, "POST", "/", "ping")
	if err != nil || code != 200 || body != "ping" {
		t.Fatalf("echo: %d %q %v", code, body, err)
	}
	waitFor(t, "stdout and stderr lines in the logs", func() bool {
		return logs.Has("stdout: started") && logs.Has("stderr: warming")
	})
	inst2 := start(t, fx, s)
	if inst2.ID() == inst.ID() || inst2.Addr() == inst.Addr() {
		t.Fatalf("two instances share id or address: %s %s", inst.Addr(), inst2.Addr())
	}
}

func testEnv(t *testing.T, fx Fixture) {
	s, _ := spec(fx, "envfn", function.ProtocolHTTP)
	inst := start(t, fx, s)
	_, body, err := Call(inst, "GET", "/env", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GREETING=hello", "NIMBUS_FUNCTION=envfn", "NIMBUS_NAMESPACE=default", "NIMBUS_REVISION=7", "PORT="} {
		if !strings.Contains(body, want) {
			t.Errorf("instance environment lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, Canary) {
		t.Errorf("instance inherited the platform's environment:\n%s", body)
	}
}

func testCrash(t *testing.T, fx Fixture) {
	s, _ := spec(fx, "crash", function.ProtocolHTTP)
	inst := start(t, fx, s)
	began := time.Now()
	// In process the connection breaks; behind a watchdog the answer is a 5xx.
	if code, _, err := Call(inst, "GET", "/crash", ""); err == nil && code < 500 {
		t.Fatalf("a request to a crashing instance succeeded: %d", code)
	}
	select {
	case <-inst.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the instance crashed")
	}
	if time.Since(began) > time.Second {
		t.Errorf("crash noticed after %s, want under 1s", time.Since(began))
	}
	if inst.Err() == nil {
		t.Fatal("Err is nil after a crash")
	}
}

func testStartFailure(t *testing.T, fx Fixture) {
	s, _ := spec(fx, "broken", function.ProtocolHTTP, "fail")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := fx.Driver.Start(ctx, s)
	if err == nil {
		inst.Stop(ctx)
		t.Fatal("Start of a program that exits at once succeeded")
	}
	if !errors.Is(err, driver.ErrStartFailed) || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("error should wrap ErrStartFailed and carry the program's output, got: %v", err)
	}
}

func testStop(t *testing.T, fx Fixture) {
	s, logs := spec(fx, "stopme", function.ProtocolHTTP)
	inst := start(t, fx, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Done():
	default:
		t.Fatal("Stop returned before the instance was gone")
	}
	if inst.Err() != nil {
		t.Errorf("Err after Stop should be nil, got %v", inst.Err())
	}
	waitFor(t, "the SIGTERM handler's line", func() bool { return logs.Has("stdout: stopping") })
	if c, err := net.DialTimeout("tcp", inst.Addr(), 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("instance still accepts connections after Stop")
	}
	inst.Stop(ctx) // idempotent
}

func testStdio(t *testing.T, fx Fixture) {
	s, logs := spec(fx, "cat", function.ProtocolStdio, "stdio")
	inst := start(t, fx, s)
	if inst.Transport() == nil && inst.Addr() == "" {
		t.Fatal("a stdio instance needs a transport or an address")
	}
	code, body, err := Call(inst, "POST", "/", "hello stdio")
	if err != nil || code != 200 || body != "hello stdio" {
		t.Fatalf("echo: %d %q %v", code, body, err)
	}
	code, body, err = Call(inst, "POST", "/", "fail")
	if err != nil || code != 500 {
		t.Fatalf("non-zero exit: want 500, got %d %q %v", code, body, err)
	}
	if strings.Contains(body, "asked to fail") || !strings.Contains(body, "status 3") {
		t.Fatalf("500 body must state the exit, not the stderr: %q", body)
	}
	waitFor(t, "stderr in the logs", func() bool { return logs.Has("stderr: testfn: asked to fail") })
	_, body, _ = Call(inst, "POST", "/", "env")
	if strings.Contains(body, Canary) || !strings.Contains(body, "NIMBUS_HTTP_METHOD=POST") {
		t.Fatalf("stdio environment wrong:\n%s", body)
	}
	// Concurrent requests each get their own process.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			msg := fmt.Sprint("req-", i)
			if _, b, err := Call(inst, "POST", "/", msg); err != nil || b != msg {
				errs <- fmt.Errorf("%s: %q %v", msg, b, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testCancelled(t *testing.T, fx Fixture) {
	s, _ := spec(fx, "cancelled", function.ProtocolHTTP)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if inst, err := fx.Driver.Start(ctx, s); err == nil {
		inst.Stop(context.Background())
		t.Fatal("Start with a cancelled context succeeded")
	}
}

func testSecrets(t *testing.T, fx Fixture) {
	s, _ := spec(fx, "secretive", function.ProtocolHTTP)
	const value = "s3cret-value-9f2c"
	s.Function.Secrets = []string{"db-password"}
	s.Secrets = map[string][]byte{"db-password": []byte(value)}
	inst := start(t, fx, s)
	code, body, err := Call(inst, "GET", "/secret?name=db-password", "")
	if err != nil || code != 200 || body != value {
		t.Fatalf("the function cannot read its secret file: %d %q %v", code, body, err)
	}
	_, env, _ := Call(inst, "GET", "/env", "")
	if strings.Contains(env, value) || !strings.Contains(env, "NIMBUS_SECRETS_DIR=") {
		t.Fatalf("secret leaked into the environment, or NIMBUS_SECRETS_DIR missing:\n%s", env)
	}
}
