package apiserver_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"nimbus/internal/apiserver"
	"nimbus/internal/archive"
	"nimbus/internal/async"
	"nimbus/internal/backbone"
	"nimbus/internal/calls"
	"nimbus/internal/calls/natscalls"
	"nimbus/internal/controller"
	"nimbus/internal/driver"
	"nimbus/internal/driver/drivertest"
	"nimbus/internal/driver/process"
	"nimbus/internal/events"
	"nimbus/internal/events/natsevents"
	"nimbus/internal/fetchtoken"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/outbound"
	"nimbus/internal/provider"
	"nimbus/internal/queue/natsqueue"
	"nimbus/internal/scaler/scalertest"
	"nimbus/internal/store"
	"nimbus/internal/store/natsstore"
	"nimbus/internal/trigger/nattrigger"
	"nimbus/internal/versions"
)

const token = "0123456789abcdef0123456789abcdef"

type env struct {
	evsrv *httptest.Server // the events API listener
	srv   *httptest.Server
	api   *apiserver.Server
	store store.Store
	// versions is the versions manager the API was given.
	versions *versions.Manager
}

// newEnv runs the API on a real embedded NATS store, a real gateway and the
// process driver, kept in step by the controller.
func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith lets a test change the API server's options.
func newEnvWith(t *testing.T, mod func(*apiserver.Options)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := process.New(process.Options{StateDir: drivertest.StateDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	callStream, err := natscalls.Open(ctx, bb.JS, natscalls.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recorder := calls.NewRecorder(callStream, calls.RecorderOptions{FlushEvery: 20 * time.Millisecond})
	index := calls.NewIndex(1000, time.Hour)
	go callStream.Follow(ctx, func(b []calls.Record) { index.Add(b, time.Now()) })
	reg := prometheus.NewRegistry()
	t.Cleanup(func() { drv.Close(context.Background()) }) // after the stack's
	logLine := func(l store.LogLine) { st.AppendLog(context.Background(), l) }
	stack := scalertest.New(t, map[string]driver.Driver{"process": drv},
		gateway.Options{Log: logLine, Metrics: gateway.NewMetrics(reg), OnCall: recorder.Record},
		provider.LocalOptions{OpenPackage: st.OpenPackage, SecretValue: st.SecretValue, Log: logLine})
	gw := stack.Gateway
	q, err := natsqueue.Open(ctx, bb.JS, natsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Outside endpoints in tests are on loopback: allow it, as --allow-outbound does.
	guard := outbound.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	disp := &async.Dispatcher{Queue: q, Invoke: gw, Spec: gw.Spec, Record: recorder.Record, RecordThen: recorder.RecordThen,
		Outbound: guard.Client(5 * time.Second)}
	disp.ConsumeOutbound(events.OutboundNamespace, events.OutboundFunction, 16)
	disp.ConsumeOutbound(async.CallbackNamespace, async.CallbackFunction, 16)
	synced := make(chan struct{})
	ctl := &controller.Controller{Store: st, Target: controller.Targets{stack, disp}}
	done := make(chan struct{})
	go func() { ctl.Run(ctx, synced); close(done) }()
	<-synced
	triggers, err := nattrigger.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	evStore, err := natsevents.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	ingress := &events.Ingress{Store: evStore, MaxBodyBytes: 32 << 20, Deliver: &events.Deliverer{Queue: q, Gateway: gw, Spec: gw.Spec,
		Record: recorder.Record, Client: guard.Client(5 * time.Second)}}
	opts := apiserver.Options{Store: st, Invoker: gw, Scaling: stack.Scaler, Token: token, Runtimes: map[string]bool{"process": true},
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Ready: st.Ping, Version: "test",
		Queue: q, Async: &async.Handler{Queue: q, Spec: gw.Spec, Record: recorder.Record}, Calls: index, Triggers: triggers,
		EventConfig: &events.ConfigAPI{Store: evStore, CheckURL: guard.CheckURL}, CloudEvents: ingress.CloudEvents()}
	var api *apiserver.Server
	opts.Versions = &versions.Manager{Store: st,
		Deploy: func(ctx context.Context, fn function.Function) (store.Record, error) {
			rec, _, err := api.Deploy(ctx, fn, apiserver.CreateOnly, 0)
			return rec, err
		},
		Delete: func(ctx context.Context, ns, name string) error { return api.RemoveFunction(ctx, ns, name) },
	}
	if mod != nil {
		mod(&opts)
	}
	api = apiserver.New(opts)
	srv := httptest.NewServer(api)
	evsrv := httptest.NewServer(ingress.EventsAPI())
	t.Cleanup(func() {
		srv.Close()
		evsrv.Close()
		evStore.Close()
		recorder.Close(context.Background())
		cancel()
		<-done
		disp.Close()
		bb.Close()
	})
	return &env{evsrv: evsrv, srv: srv, api: api, store: st, versions: opts.Versions}
}

func (e *env) do(t *testing.T, method, path string, body io.Reader, auth bool) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

type apiErr struct {
	Error struct{ Code, Message, Field string }
}

func decodeErr(t *testing.T, b []byte) apiErr {
	var e apiErr
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not an error body: %s", b)
	}
	return e
}

// upload sends testfn's package and returns its digest.
func (e *env) upload(t *testing.T) string {
	_, open := drivertest.TestPackage(t)
	digest, _ := drivertest.TestPackage(t)
	rc, _ := open(context.Background(), digest)
	code, b, _ := e.do(t, "POST", "/v1/packages", rc, true)
	if code != 201 || !strings.Contains(string(b), digest) {
		t.Fatalf("upload: %d %s", code, b)
	}
	return digest
}

func spec(digest string, extra string) io.Reader {
	return strings.NewReader(`{"command":["./testfn"],"package":"` + digest + `"` + extra + `}`)
}

func TestAuthRequiredOnEveryV1Route(t *testing.T) {
	e := newEnv(t)
	for _, r := range e.api.Routes() {
		path := strings.NewReplacer("{name}", "x", "{space}", "x", "{id}", "x", "{digest}", "x").Replace(r.Pattern)
		code, b, h := e.do(t, r.Method, path, nil, false)
		admin := strings.HasPrefix(r.Pattern, "/v1/") || strings.HasPrefix(r.Pattern, "/system/")
		if r.Pattern == "/v1/status" || r.Pattern == "/v1/metrics" {
			// The Event Gateway's status says nothing; its metrics are
			// Prometheus's, open unless --metrics-auth.
			if r.Auth || code != 200 {
				t.Errorf("%s %s is open: auth %v, %d", r.Method, path, r.Auth, code)
			}
			continue
		}
		if strings.HasPrefix(r.Pattern, "/v1/spaces/") {
			// The Event Gateway API: its own error shape, the same token.
			if code != 401 || h.Get("WWW-Authenticate") == "" || !strings.Contains(string(b), `{"errors":[{"message":`) {
				t.Errorf("%s %s without a token: %d %s", r.Method, path, code, b)
			}
			continue
		}
		if r.Auth != admin {
			t.Errorf("%s %s: auth %v", r.Method, r.Pattern, r.Auth)
		}
		if !r.Auth {
			continue
		}
		if strings.HasPrefix(r.Pattern, "/system/") { // OpenFaaS: plain-text errors, basic auth
			if code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s %s without credentials: %d %s", r.Method, path, code, b)
			}
			continue
		}
		if code != 401 || decodeErr(t, b).Error.Code != "unauthorized" || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s without a token: %d %s", r.Method, path, code, b)
		}
		req, _ := http.NewRequest(r.Method, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer wrong")
		resp, _ := http.DefaultClient.Do(req)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s %s with a wrong token: %d", r.Method, path, resp.StatusCode)
		}
	}
}

func TestDeployLifecycle(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	code, b, _ := e.do(t, "PUT", "/v1/functions/echo", spec(digest, `,"env":{"A":"1"}`), true)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var v apiserver.FunctionView
	json.Unmarshal(b, &v)
	if v.Revision == 0 || v.Function.Namespace != "default" || v.Function.Scale.Max == 0 {
		t.Fatalf("created view: %+v", v)
	}
	code, b, _ = e.do(t, "PUT", "/v1/functions/echo", spec(digest, `,"env":{"A":"2"}`), true)
	var v2 apiserver.FunctionView
	json.Unmarshal(b, &v2)
	if code != 200 || v2.Revision <= v.Revision {
		t.Fatalf("update: %d %s", code, b)
	}
	// Conditional update with a stale revision.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/functions/echo", spec(digest, ""))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("If-Match", "1")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 409 {
		t.Fatalf("stale If-Match: want 409, got %d", resp.StatusCode)
	}
	// Invoke, then status counts it.
	waitInvoke(t, e, "/function/echo", "hi")
	code, b, _ = e.do(t, "GET", "/v1/functions/echo", nil, true)
	json.Unmarshal(b, &v2)
	if code != 200 || v2.Status.Invocations != 1 || v2.Status.ReadyInstances != 1 || v2.Function.Env["A"] != "2" {
		t.Fatalf("get: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/functions/echo/instances", nil, true)
	if code != 200 || !strings.Contains(string(b), `"state": "ready"`) {
		t.Fatalf("instances: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/functions", nil, true)
	if code != 200 || !strings.Contains(string(b), `"name": "echo"`) {
		t.Fatalf("list: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/functions/echo/logs", nil, true)
	if code != 200 || !strings.Contains(string(b), `"text":"started"`) {
		t.Fatalf("logs: %d %s", code, b)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var l store.LogLine
		if err := json.Unmarshal(line, &l); err != nil || l.Function != "echo" {
			t.Fatalf("logs are not NDJSON of LogLine: %s", line)
		}
	}
	// The OpenFaaS view of the same lines: LogEntry, last N with tail.
	code, b, _ = e.do(t, "GET", "/system/logs?name=echo&tail=1", nil, true)
	var entry struct {
		Name, Namespace, Instance, Text string
		Timestamp                       time.Time
	}
	if lines := bytes.Split(bytes.TrimSpace(b), []byte("\n")); code != 200 || len(lines) != 1 || json.Unmarshal(lines[0], &entry) != nil ||
		entry.Name != "echo" || entry.Namespace != "openfaas-fn" || entry.Instance == "" || entry.Timestamp.IsZero() {
		t.Fatalf("/system/logs?tail=1: %d %s", code, b)
	}
	if code, _, _ = e.do(t, "GET", "/system/logs?name=echo", nil, true); code != 200 {
		t.Fatalf("/system/logs: %d", code)
	}
	if code, _, _ = e.do(t, "GET", "/system/logs", nil, true); code != 400 {
		t.Fatalf("/system/logs without name: %d", code)
	}
	if code, b, _ = e.do(t, "GET", "/v1/functions/echo/logs?since=soon", nil, true); code != 400 {
		t.Fatalf("bad since: %d %s", code, b)
	}
	if code, b, _ = e.do(t, "DELETE", "/v1/functions/echo", nil, true); code != 204 {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, b, _ = e.do(t, "GET", "/v1/functions/echo", nil, true); code != 404 || decodeErr(t, b).Error.Code != "function_not_found" {
		t.Fatalf("get after delete: %d %s", code, b)
	}
	if code, _, _ = e.do(t, "DELETE", "/v1/functions/echo", nil, true); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, _ := e.do(t, "GET", "/function/echo", nil, false)
		if c == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted function still invocable: %d", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitInvoke calls a function until the controller has applied its deploy.
func waitInvoke(t *testing.T, e *env, path, body string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b, _ := e.do(t, "POST", path, strings.NewReader(body), false)
		if code == 200 && string(b) == body {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoke %s: %d %s", path, code, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInvalidSpecsStoreNothing(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	cases := []struct {
		path, body, code, field string
	}{
		{"/v1/functions/Bad_Name", `{"command":["x"],"package":"` + digest + `"}`, "invalid_spec", "name"},
		{"/v1/functions/ok?namespace=NS", `{"command":["x"],"package":"` + digest + `"}`, "invalid_spec", "namespace"},
		{"/v1/functions/ok", `{"command":[],"package":"` + digest + `"}`, "invalid_spec", "command"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"min":3,"max":1}}`, "invalid_spec", "scale.min"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","protocol":"grpc"}`, "invalid_spec", "protocol"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","env":{"PORT":"1"}}`, "invalid_spec", "env.PORT"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","timeout":"forever"}`, "invalid_request", ""},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","colour":"red"}`, "invalid_request", ""},
		{"/v1/functions/ok", `{"name":"other","command":["x"],"package":"` + digest + `"}`, "invalid_spec", "name"},
		{"/v1/functions/ok", `{"command":["x"],"package":"sha256:` + strings.Repeat("1", 64) + `"}`, "package_not_found", ""},
		{"/v1/functions/ok", `{"command":["x"]}`, "invalid_spec", "package"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","runtime":"vm"}`, "invalid_spec", "runtime"},
		{"/v1/functions/ok", `{"runtime":"docker"}`, "invalid_spec", "image"},
		{"/v1/functions/ok", `{"runtime":"docker","image":"alpine:3"}`, "runtime_unavailable", ""},
		{"/v1/functions/ok", `not json`, "invalid_request", ""},
		// Hostile strings and numbers: named, with the range.
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"min":1e30}}`, "invalid_spec", "scale.min"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"maxConcurrency":-1}}`, "invalid_spec", "scale.maxConcurrency"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"max":99999999999999999999}}`, "invalid_spec", "scale.max"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","timeout":"1ms"}`, "invalid_spec", "timeout"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","timeout":1e300}`, "invalid_request", ""},
		{"/v1/functions/ok", `{"command":["x\u0000"],"package":"` + digest + `"}`, "invalid_spec", "command[0]"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","healthPath":"/h\r\nX: y"}`, "invalid_spec", "healthPath"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","env":{"A":"\u0000"}}`, "invalid_spec", "env.A"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","labels":{"a":"\r"}}`, "invalid_spec", "labels.a"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"target":0}}`, "invalid_spec", "scale.target"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"type":"memory"}}`, "invalid_spec", "scale.type"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"min":3,"max":2}}`, "invalid_spec", "scale.min"},
		{"/v1/functions/ok", `{"command":["x"],"package":"` + digest + `","scale":{"target":"lots"}}`, "invalid_spec", "scale.target"},
	}
	for _, c := range cases {
		code, b, _ := e.do(t, "PUT", c.path, strings.NewReader(c.body), true)
		if code != 400 {
			t.Errorf("%s %s: want 400, got %d %s", c.path, c.body, code, b)
			continue
		}
		got := decodeErr(t, b)
		outOfRange := strings.Contains(c.body, "99999") || strings.Contains(c.body, "1e30")
		if r, ok := function.Ranges[c.field]; ok && outOfRange && !strings.Contains(got.Error.Message, r) {
			t.Errorf("%s: the message does not give the range %q: %s", c.body, r, got.Error.Message)
		}
		if got.Error.Code != c.code || got.Error.Field != c.field {
			t.Errorf("%s %s: got code %q field %q (%s), want %q %q", c.path, c.body, got.Error.Code, got.Error.Field, got.Error.Message, c.code, c.field)
		}
	}
	if recs, _ := e.store.List(context.Background(), ""); len(recs) != 0 {
		t.Fatalf("invalid deploys stored %d functions", len(recs))
	}
}

// TestPackageUploadChecks: a package a function could never start from is
// refused at upload with a 400 naming the entry (an entry leaving the
// package, a link, a device, too many files or bytes), and nothing is
// stored.
func TestPackageUploadChecks(t *testing.T) {
	e := newEnvWith(t, func(o *apiserver.Options) { o.PackageLimits = archive.Limits{MaxBytes: 1000, MaxFiles: 5} })
	code, b, _ := e.do(t, "POST", "/v1/packages", strings.NewReader("plain text"), true)
	if code != 400 || !strings.Contains(decodeErr(t, b).Error.Message, "gzip") {
		t.Fatalf("non-gzip package: %d %s", code, b)
	}
	tgz := func(hs ...*tar.Header) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for _, h := range hs {
			tw.WriteHeader(h)
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
		tw.Close()
		gz.Close()
		return buf.Bytes()
	}
	reg := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o755}
	}
	for want, pkg := range map[string][]byte{
		`"../../etc/cron.d/x"`: tgz(reg("handler", 1), reg("../../etc/cron.d/x", 1)),
		`"/etc/passwd"`:        tgz(reg("/etc/passwd", 1)),
		`"l" is a symlink`:     tgz(&tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/root"}),
		`"h" is a hard link`:   tgz(&tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../../x"}),
		`"d" is a device`:      tgz(&tar.Header{Typeflag: tar.TypeBlock, Name: "d"}),
		"more than 5 files":    tgz(reg("a", 1), reg("b", 1), reg("c", 1), reg("d", 1), reg("e", 1), reg("f", 1)),
		"more than 1000 bytes": tgz(reg("big", 1001)),
		"not a valid tar":      tgz(reg("f", 100))[:40],
	} {
		code, b, _ := e.do(t, "POST", "/v1/packages", bytes.NewReader(pkg), true)
		got := decodeErr(t, b)
		if code != 400 || got.Error.Code != "invalid_package" || !strings.Contains(got.Error.Message, want) {
			t.Errorf("want 400 invalid_package saying %s, got %d %s", want, code, b)
		}
		sum := sha256.Sum256(pkg)
		if _, err := e.store.StatPackage(context.Background(), "sha256:"+hex.EncodeToString(sum[:])); err == nil {
			t.Errorf("a refused package (%s) was stored", want)
		}
	}
	code, b, _ = e.do(t, "POST", "/v1/packages", bytes.NewReader(tgz(reg("handler", 10))), true)
	if code != 201 || !strings.Contains(string(b), `"unpackedBytes": 10`) {
		t.Fatalf("a good package: %d %s", code, b)
	}
}

// TestPackageDownload: a package's bytes go to the admin token, and to
// its fetch token (a kube pod's) only: not to another package's token, a
// token forged from another key, nor a path trick.
func TestPackageDownload(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	get := func(path, cred string) (int, []byte) {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		if cred != "" {
			req.Header.Set("Authorization", cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	key := fetchtoken.Key(token)
	sum := func(b []byte) string { h := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(h[:]) }
	code, b := get("/v1/packages/"+digest, "Bearer "+token)
	if code != 200 || sum(b) != digest {
		t.Fatalf("with the admin token: %d, %d bytes of digest %s", code, len(b), sum(b))
	}
	code, b = get("/v1/packages/"+digest, "bearer "+fetchtoken.Token(key, digest))
	if code != 200 || sum(b) != digest {
		t.Fatalf("with its fetch token: %d, %d bytes", code, len(b))
	}
	other := "sha256:" + strings.Repeat("0", 64)
	for name, c := range map[string]struct{ path, cred string }{
		"no token":             {"/v1/packages/" + digest, ""},
		"another's token":      {"/v1/packages/" + digest, "Bearer " + fetchtoken.Token(key, other)},
		"another key's token":  {"/v1/packages/" + digest, "Bearer " + fetchtoken.Token(fetchtoken.Key("other-admin-token"), digest)},
		"a bare HMAC":          {"/v1/packages/" + digest, "Bearer " + strings.TrimPrefix(fetchtoken.Token(key, digest), "nimbus-package.")},
		"its token, elsewhere": {"/v1/packages/" + other, "Bearer " + fetchtoken.Token(key, digest)},
		"a fetch token on /v1": {"/v1/functions", "Bearer " + fetchtoken.Token(key, digest)},
	} {
		if code, b := get(c.path, c.cred); code != 401 || decodeErr(t, b).Error.Code != "unauthorized" {
			t.Errorf("%s: %d %s, want 401 unauthorized", name, code, b)
		}
	}
	if code, b := get("/v1/packages/"+other, "Bearer "+token); code != 404 || decodeErr(t, b).Error.Code != "package_not_found" {
		t.Errorf("an unknown package: %d %s", code, b)
	}
	if code, b := get("/v1/packages/sha256:..%2f..%2fetc", "Bearer "+token); code != 400 || !strings.Contains(decodeErr(t, b).Error.Message, "not a package digest") {
		t.Errorf("a path trick: %d %s", code, b)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	if code, _, _ := e.do(t, "GET", "/healthz", nil, false); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _, _ := e.do(t, "GET", "/readyz", nil, false); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	digest := e.upload(t)
	e.do(t, "PUT", "/v1/functions/m", spec(digest, ""), true)
	waitInvoke(t, e, "/function/m", "x")
	_, b, _ := e.do(t, "GET", "/metrics", nil, false)
	for _, want := range []string{
		`nimbus_invocations_total{code="200",function="m",namespace="default"} 1`,
		`nimbus_invocation_duration_seconds_count{function="m",namespace="default"} 1`,
		`nimbus_cold_starts_total{function="m",namespace="default"} 1`,
		`nimbus_cold_start_duration_seconds_count{function="m",namespace="default"} 1`,
		`nimbus_instances{function="m",namespace="default"} 1`,
		`gateway_function_invocation_total{code="200",function_name="m.default"} 1`,
		`gateway_functions_seconds_count{code="200",function_name="m.default"} 1`,
		`gateway_function_invocation_started{function_name="m.default"} 1`,
		`gateway_service_count{function_name="m.default"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestOpenAPIMatchesRoutes: every route the server answers is in
// api/openapi.yaml, and every route there is answered.
// TestMetricsAuth: with MetricsAuth (--metrics-auth) /metrics needs the
// admin token, as a bearer token or as OpenFaaS's basic credential.
func TestMetricsAuth(t *testing.T) {
	e := newEnvWith(t, func(o *apiserver.Options) { o.MetricsAuth = true })
	if code, b, _ := e.do(t, "GET", "/metrics", nil, false); code != 401 || !strings.Contains(string(b), "unauthorized") {
		t.Fatalf("/metrics without a credential: %d %s", code, b)
	}
	if code, _, _ := e.do(t, "GET", "/metrics", nil, true); code != 200 {
		t.Fatalf("/metrics with the bearer token: %d", code)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/metrics", nil)
	req.SetBasicAuth("admin", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics with basic auth: %d", resp.StatusCode)
	}
	req.SetBasicAuth("admin", "wrong")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("/metrics with a wrong password: %d", resp.StatusCode)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}
	inSpec := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			if methods[m] {
				inSpec[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	e := newEnv(t)
	for _, r := range e.api.Routes() {
		if !inSpec[r.Method+" "+r.Pattern] {
			t.Errorf("%s %s is served but not in api/openapi.yaml", r.Method, r.Pattern)
		}
	}
	for _, p := range []string{"/async-function/{function}", "/async-function/{function}/{path}"} {
		if !inSpec["POST "+p] {
			t.Errorf("POST %s is served but not in api/openapi.yaml", p)
		}
	}
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
		for _, p := range []string{"/function/{function}", "/function/{function}/{path}"} {
			if !inSpec[m+" "+p] {
				t.Errorf("%s %s is served but not in api/openapi.yaml", m, p)
			}
		}
	}
	for route := range inSpec {
		method, path, _ := strings.Cut(route, " ")
		concrete := strings.NewReplacer("{name}", "nosuchfn", "{function}", "nosuchfn", "{path}", "sub/path", "{id}", "nosuchcall", "{space}", "default").Replace(path)
		code, b, _ := e.do(t, method, concrete, nil, true)
		var e apiErr
		json.Unmarshal(b, &e) // OpenFaaS routes answer in plain text
		if code == 405 || (code == 404 && e.Error.Code == "route_not_found") {
			t.Errorf("%s is in the spec but not answered: %d %s", route, code, b)
		}
	}
}

func TestSecrets(t *testing.T) {
	e := newEnv(t)
	const value = "hunter2-secret-7c1"
	code, b, _ := e.do(t, "PUT", "/v1/secrets/db", strings.NewReader(`{"value":"`+value+`"}`), true)
	if code != 201 || strings.Contains(string(b), value) {
		t.Fatalf("create: %d %s", code, b)
	}
	if code, b, _ = e.do(t, "PUT", "/v1/secrets/db", strings.NewReader(`{"value":"`+value+`"}`), true); code != 200 {
		t.Fatalf("update: %d %s", code, b)
	}
	if code, b, _ = e.do(t, "PUT", "/v1/secrets/db", strings.NewReader(`{"secret":"x"}`), true); code != 400 {
		t.Fatalf("bad body: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/secrets", nil, true)
	if code != 200 || !strings.Contains(string(b), `"name": "db"`) || strings.Contains(string(b), value) {
		t.Fatalf("list: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/system/secrets", nil, true)
	if code != 200 || !strings.Contains(string(b), `"name":"db"`) || strings.Contains(string(b), value) {
		t.Fatalf("OpenFaaS list: %d %s", code, b)
	}
	digest := e.upload(t)
	if code, b, _ = e.do(t, "PUT", "/v1/functions/sec", spec(digest, `,"secrets":["nope"]`), true); code != 400 || decodeErr(t, b).Error.Code != "secret_not_found" {
		t.Fatalf("missing secret: %d %s", code, b)
	}
	if code, b, _ = e.do(t, "PUT", "/v1/functions/sec", spec(digest, `,"secrets":["db"]`), true); code != 201 {
		t.Fatalf("deploy: %d %s", code, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b, _ = e.do(t, "GET", "/function/sec/secret?name=db", nil, false)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("function cannot read its secret: %d %s", code, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if string(b) != value {
		t.Fatalf("secret file holds %q", b)
	}
	for _, path := range []string{"/v1/functions/sec", "/v1/functions/sec/logs", "/v1/functions/sec/instances", "/system/function/sec"} {
		if _, b, _ := e.do(t, "GET", path, nil, true); strings.Contains(string(b), value) {
			t.Fatalf("%s shows the secret's value: %s", path, b)
		}
	}
	if code, _, _ = e.do(t, "DELETE", "/v1/secrets/db", nil, true); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, b, _ = e.do(t, "DELETE", "/v1/secrets/db", nil, true); code != 404 || decodeErr(t, b).Error.Code != "secret_not_found" {
		t.Fatalf("second delete: %d %s", code, b)
	}
}

// TestAlertScales: an AlertManager webhook scales the function it names by
// the OpenFaaS rule, and its resolution scales it back — as state, with no
// new revision.
func TestAlertScales(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	e.do(t, "PUT", "/v1/functions/hot", spec(digest, `,"labels":{"com.openfaas.scale.min":"0","com.openfaas.scale.max":"10","com.openfaas.scale.factor":"30"},"scale":{"max":10}`), true)
	payload := func(status string) io.Reader {
		return strings.NewReader(`{"receiver":"scale-up","status":"` + status + `","alerts":[{"status":"` + status +
			`","labels":{"alertname":"APIHighInvocationRate","function_name":"hot.default"}}],"version":"4"}`)
	}
	view := func() apiserver.FunctionView {
		_, b, _ := e.do(t, "GET", "/v1/functions/hot", nil, true)
		var v apiserver.FunctionView
		json.Unmarshal(b, &v)
		if v.Scale == nil {
			t.Fatalf("no scale state: %s", b)
		}
		return v
	}
	rev := view().Revision
	if code, b, _ := e.do(t, "POST", "/system/alert", payload("firing"), true); code != 200 {
		t.Fatalf("alert: %d %s", code, b)
	}
	if got := view().Scale.Desired; got != 3 { // ceil(10 × 30 / 100)
		t.Fatalf("after firing: desired %d, want 3", got)
	}
	e.do(t, "POST", "/system/alert", payload("firing"), true)
	if got := view().Scale.Desired; got != 6 {
		t.Fatalf("after a second firing: desired %d, want 6", got)
	}
	e.do(t, "POST", "/system/alert", payload("resolved"), true)
	v := view()
	if v.Scale.Floor != 0 || v.Revision != rev || v.Function.Scale.Min != 0 {
		t.Fatalf("after resolved: floor %d, revision %d (was %d), min %d", v.Scale.Floor, v.Revision, rev, v.Function.Scale.Min)
	}
	if code, _, _ := e.do(t, "POST", "/system/alert", strings.NewReader(`{"x":1}`), true); code != 400 {
		t.Fatalf("not a payload: %d", code)
	}
}

// TestScaleKeepsInstances: scaling through the API changes the desired
// count, not the spec: no new revision, the running instance is kept and
// a second one joins it; scaling down stops one. Bad requests change
// nothing.
func TestScaleKeepsInstances(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	e.do(t, "PUT", "/v1/functions/sc", spec(digest, ``), true)
	if code, b, _ := e.do(t, "POST", "/function/sc", strings.NewReader("x"), false); code != 200 {
		t.Fatalf("invoke: %d %s", code, b)
	}
	instances := func() []gateway.InstanceStatus {
		_, b, _ := e.do(t, "GET", "/v1/functions/sc/instances", nil, true)
		var v struct{ Instances []gateway.InstanceStatus }
		json.Unmarshal(b, &v)
		return v.Instances
	}
	first := instances()
	if len(first) != 1 {
		t.Fatalf("after a call: %+v", first)
	}
	code, b, _ := e.do(t, "POST", "/v1/functions/sc/scale", strings.NewReader(`{"replicas":2}`), true)
	var v apiserver.FunctionView
	json.Unmarshal(b, &v)
	if code != 200 || v.Scale == nil || v.Scale.Desired != 2 || v.Scale.Floor != 2 || !strings.Contains(v.Scale.Reason, "API") {
		t.Fatalf("scale: %d %s", code, b)
	}
	waitFor(t, "two instances", func() bool { return len(instances()) == 2 })
	kept := false
	for _, in := range instances() {
		kept = kept || in.ID == first[0].ID
		if in.Revision != first[0].Revision {
			t.Fatalf("an instance of another revision: %+v", in)
		}
	}
	if !kept {
		t.Fatalf("scaling replaced the running instance: %+v then %+v", first, instances())
	}
	for _, c := range []struct{ body, field string }{
		{`{"replicas":-1}`, "replicas"},
		{`{"replicas":5}`, "replicas"}, // above scale.max 4
		{`{}`, "replicas"},
		{`{"replicas":"two"}`, "replicas"},
		{`{"replicas":1,"extra":1}`, "replicas"},
	} {
		code, b, _ := e.do(t, "POST", "/v1/functions/sc/scale", strings.NewReader(c.body), true)
		if code != 400 || decodeErr(t, b).Error.Field != c.field {
			t.Errorf("%s: %d %s", c.body, code, b)
		}
	}
	if code, b, _ := e.do(t, "POST", "/v1/functions/nope/scale", strings.NewReader(`{"replicas":1}`), true); code != 404 {
		t.Errorf("unknown function: %d %s", code, b)
	}
	if code, _, _ := e.do(t, "POST", "/v1/functions/sc/scale", strings.NewReader(`{"replicas":1}`), false); code != 401 {
		t.Errorf("without the token: %d", code)
	}
	if got := len(instances()); got != 2 {
		t.Fatalf("bad requests changed the instances: %d", got)
	}
	e.do(t, "POST", "/v1/functions/sc/scale", strings.NewReader(`{"replicas":1}`), true)
	waitFor(t, "one instance", func() bool { return len(instances()) == 1 })
	_, b, _ = e.do(t, "GET", "/v1/functions/sc", nil, true)
	json.Unmarshal(b, &v)
	if v.Revision != first[0].Revision {
		t.Fatalf("the revision changed: %s", b)
	}
}

// TestDeleteDoesNotBlockDeploys: deleting a function whose instance takes
// 3s to stop does not hold up a deploy of another function: it answers at
// once and serves, while the first is still stopping.
func TestDeleteDoesNotBlockDeploys(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	if code, b, _ := e.do(t, "PUT", "/v1/functions/slowstop", spec(digest, `,"env":{"TERM_DELAY":"3s"}`), true); code != 201 {
		t.Fatalf("deploy: %d %s", code, b)
	}
	waitInvoke(t, e, "/function/slowstop", "up")
	began := time.Now()
	if code, b, _ := e.do(t, "DELETE", "/v1/functions/slowstop", nil, true); code != 204 && code != 200 {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "PUT", "/v1/functions/other", spec(digest, ""), true); code != 201 {
		t.Fatalf("deploy: %d %s", code, b)
	}
	if took := time.Since(began); took > 1500*time.Millisecond {
		t.Fatalf("delete and deploy took %s: the deploy waited for the other function's instance to stop", took)
	}
	waitInvoke(t, e, "/function/other", "served")
	if took := time.Since(began); took > 2500*time.Millisecond {
		t.Fatalf("the new function served only after %s", took)
	}
}

// waitFor polls cond until it holds, for 10 s at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartFailureShowsAndBacksOff: a function whose instances cannot
// start answers 503, and its status says why and when the next try is,
// with the tries backing off rather than looping.
func TestStartFailureShowsAndBacksOff(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	e.do(t, "PUT", "/v1/functions/broken", strings.NewReader(`{"command":["./testfn","fail"],"package":"`+digest+`","scale":{"min":1}}`), true)
	var v apiserver.FunctionView
	waitFor(t, "the start failure in the status", func() bool {
		_, b, _ := e.do(t, "GET", "/v1/functions/broken", nil, true)
		json.Unmarshal(b, &v)
		return v.Scale != nil && v.Scale.StartError != "" && !v.Scale.RetryAt.IsZero()
	})
	if !strings.Contains(v.Scale.StartError, "refusing to start") || v.Status.LastError == "" || v.Scale.Ready != 0 {
		t.Fatalf("status: %+v %+v", v.Scale, v.Status)
	}
	if code, b, _ := e.do(t, "POST", "/function/broken", nil, false); code != 503 || !strings.Contains(string(b), "start_failed") {
		t.Fatalf("invoke: %d %s", code, b)
	}
	// Backing off: the next try is later than the last failure by more
	// each time; two seconds hold at most five tries (100 ms doubling).
	time.Sleep(2 * time.Second)
	_, b, _ := e.do(t, "GET", "/v1/functions/broken/logs?since=1m", nil, true)
	if n := strings.Count(string(b), "instance failed to start"); n < 2 || n > 6 {
		t.Fatalf("%d failed starts logged in about 2 s:\n%s", n, b)
	}
}
