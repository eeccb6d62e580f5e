package apiserver_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/events"
	"nimbus/internal/function"
)

// eg calls the Event Gateway config API with the admin token.
func (e *env) eg(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	code, b, _ := e.do(t, method, "/v1/spaces/default"+path, rd, true)
	return code, string(b)
}

// events sends a request to the events API listener.
func (e *env) events(t *testing.T, method, path, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	return send(t, method, e.evsrv.URL+path, body, hdr...)
}

// send makes a request with headers given as name, value pairs.
func send(t *testing.T, method, url, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// deployRecorder deploys testfn as name with a RECORD_FILE it may write (it
// runs unprivileged), and returns that file's path.
func (e *env) deployRecorder(t *testing.T, name string) string {
	t.Helper()
	dir, _ := os.MkdirTemp("", "nimbus-record-")
	os.Chmod(dir, 0o777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	record := filepath.Join(dir, "record.log")
	if code, b, _ := e.do(t, "PUT", "/v1/functions/"+name, spec(e.upload(t), `,"env":{"RECORD_FILE":"`+record+`"}`), true); code != 201 {
		t.Fatalf("deploy %s: %d %s", name, code, b)
	}
	return record
}

// TestEventGateway: the Event Gateway's register, subscribe and emit calls
// (its current and its older tutorial forms) against a real nimbus function:
// sync http.request with path parameters, CloudEvents fanned out to async
// subscribers durably (nimbus functions and an outside endpoint), CORS,
// the outbound guard, and in-use deletes refused.
func TestEventGateway(t *testing.T) {
	e := newEnv(t)
	record := e.deployRecorder(t, "egfn")

	// Register functions: the current form, and the older one with a
	// redundant space and provider.type.
	if code, b := e.eg(t, "POST", "/functions", `{"functionId":"hello","type":"nimbus","provider":{"function":"egfn"}}`); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := e.eg(t, "POST", "/functions", `{"functionId":"old","space":"default","provider":{"type":"nimbus","function":"egfn"}}`); code != 201 {
		t.Fatalf("register, older form: %d %s", code, b)
	}
	for body, want := range map[string]string{
		`{"functionId":"x","space":"other","type":"nimbus","provider":{"function":"egfn"}}`:                                                   "differs",
		`{"functionId":"x","type":"awslambda","provider":{"arn":"a"}}`:                                                                        "provider.arn",
		`{"functionId":"x","type":"grpc","provider":{"url":"a"}}`:                                                                             "not supported",
		`{"functionId":"x","type":"awslambda","provider":{"arn":"arn:aws:lambda:us-east-1:000000000000:function:f","region":"eu-west-1"}}`:    "region",
		`{"functionId":"x","type":"awslambda","provider":{"arn":"arn:aws:lambda:us-east-1:000000000000:function:f","awsAccessKeyId":"AKIA"}}`: "go together",
		`{"functionId":"x","type":"awslambda","provider":{"arn":"arn:aws:lambda:us-east-1:12:function:f"}}`:                                   "12 digits",
		`{"functionId":"x","type":"awslambda","provider":{"arn":"arn:aws:lambda:us-east-1:000000000000:function:f\u0000"}}`:                   "function name",
		`{"functionId":"x","type":"http","provider":{"url":"http://169.254.169.254/latest/"}}`:                                                "169.254.169.254",
		`{"functionId":"x","type":"http","provider":{"url":"http://[::1%25lo]:9/"}}`:                                                          "zone",
		`{"functionId":"x","type":"http","provider":{"url":"http://[::127.0.0.2]:9/"}}`:                                                       "127.0.0.2",
		`{"functionId":"x","type":"http","provider":{"url":"http://[2002:a9fe:a9fe::]/"}}`:                                                    "169.254.169.254",
		`{"functionId":"x","type":"nimbus","provider":{"function":"Bad_Name"}}`:                                                               "provider.function",
		`{"functionId":"hello","type":"nimbus","provider":{"function":"egfn"}}`:                                                               `Function \"hello\" already registered.`,
	} {
		code, b := e.eg(t, "POST", "/functions", body)
		if (code != 400 && code != 409) || !strings.Contains(b, want) || !strings.Contains(b, `"errors"`) {
			t.Fatalf("%s: want an error with %q, got %d %s", body, want, code, b)
		}
	}

	// Sync subscriptions: with a path parameter; and the older form. The
	// event type must be registered first, as the Event Gateway wants.
	if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"hello","method":"GET","path":"/hello/:name"}`); code != 400 ||
		!strings.Contains(b, `Event Type \"http.request\" not found.`) {
		t.Fatalf("subscribe to an unregistered event type: %d %s", code, b)
	}
	if code, b := e.eg(t, "POST", "/eventtypes", `{"name":"http.request"}`); code != 201 {
		t.Fatalf("event type: %d %s", code, b)
	}
	if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"hello","method":"GET","path":"/hello/:name"}`); code != 201 {
		t.Fatalf("subscribe: %d %s", code, b)
	}
	if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"old","method":"GET","path":"/hello/:name"}`); code != 409 ||
		!strings.Contains(b, "already exists") {
		t.Fatalf("a second sync subscription on one path: %d %s", code, b)
	}
	// Paths the Event Gateway's routing tree cannot hold beside it.
	for path, want := range map[string]string{
		"/hello/:who":  `parameter with different name (\"name\") already defined: for route: /hello/:who`,
		"/hello/there": `parameter with different name (\"name\") already defined: for route: /hello/there`,
	} {
		if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"old","method":"GET","path":"`+path+`"}`); code != 400 ||
			!strings.Contains(b, "Subscription path conflict: "+want) {
			t.Fatalf("a conflicting sync path %s: %d %s", path, code, b)
		}
	}
	if code, b := e.eg(t, "POST", "/subscriptions", `{"functionId":"old","event":"http","method":"POST","path":"/legacy"}`); code != 201 {
		t.Fatalf("subscribe, older form: %d %s", code, b)
	}
	code, body, hdr := e.events(t, "GET", "/hello/world?x=1", "")
	var data struct {
		Path, Method string
		Params       map[string]string
		Query        map[string][]string
	}
	if code != 200 || hdr.Get("X-Event-Type") != "http.request" || json.Unmarshal([]byte(body), &data) != nil ||
		data.Params["name"] != "world" || data.Method != "GET" || data.Query["x"][0] != "1" || data.Path != "/hello/world" {
		t.Fatalf("sync http.request: %d %v %s", code, hdr, body)
	}
	code, body, _ = e.events(t, "POST", "/legacy", `{"a":1}`, "Content-Type", "application/json")
	if code != 200 || !strings.Contains(body, `"body":{"a":1}`) {
		t.Fatalf("older-form sync: %d %s", code, body)
	}
	if code, body, _ = e.events(t, "GET", "/nowhere", ""); code != 202 || body != "" {
		t.Fatalf("unsubscribed path: want 202 with no body, as the Event Gateway 0.9, got %d %s", code, body)
	}
	// A wildcard takes the rest of the path.
	if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"hello","method":"GET","path":"/files/*rest"}`); code != 201 {
		t.Fatalf("wildcard subscribe: %d %s", code, b)
	}
	code, body, _ = e.events(t, "GET", "/files/a/b/c.txt", "")
	if code != 200 || json.Unmarshal([]byte(body), &data) != nil || data.Params["rest"] != "a/b/c.txt" {
		t.Fatalf("wildcard: %d %s", code, body)
	}

	// Async: two nimbus subscribers and one outside endpoint to one type.
	var mu sync.Mutex
	var outside []http.Header
	ext := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		outside = append(outside, r.Header.Clone())
		mu.Unlock()
	}))
	defer ext.Close()
	if code, b := e.eg(t, "POST", "/eventtypes", `{"name":"user.created"}`); code != 201 {
		t.Fatalf("event type: %d %s", code, b)
	}
	if code, b := e.eg(t, "POST", "/functions", `{"functionId":"ext","type":"http","provider":{"url":"`+ext.URL+`/hook"},"eventFormat":"ce-1.0-binary"}`); code != 201 {
		t.Fatalf("register outside endpoint: %d %s", code, b)
	}
	for _, fn := range []string{"hello", "old", "ext"} {
		if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"async","eventType":"user.created","functionId":"`+fn+`","path":"/users"}`); code != 201 {
			t.Fatalf("async subscribe %s: %d %s", fn, code, b)
		}
	}
	code, body, _ = e.events(t, "POST", "/users", `{"id":7}`, "Ce-Specversion", "1.0", "Ce-Id", "evt-1",
		"Ce-Source", "/tests", "Ce-Type", "user.created", "Content-Type", "application/json")
	if code != 202 {
		t.Fatalf("binary CloudEvent: %d %s", code, body)
	}
	// The same event through /events, structured mode: the same id and
	// source, so no second delivery; a new id is one more per subscriber.
	code, b, _ := e.do(t, "POST", "/events", strings.NewReader(`{"specversion":"1.0","id":"evt-1","source":"/tests","type":"user.created","data":{"id":7}}`), false)
	if code != 400 { // no Content-Type: not recognisably a CloudEvent
		t.Fatalf("/events without a CloudEvents content type: %d %s", code, b)
	}
	post := func(js string) (int, string) {
		code, b, _ := send(t, "POST", e.srv.URL+"/events", js, "Content-Type", "application/cloudevents+json")
		return code, b
	}
	if code, b := post(`{"specversion":"1.0","id":"evt-1","source":"/tests","type":"user.created","data":{"id":7}}`); code != 202 || !strings.Contains(b, `"deliveries":3`) {
		t.Fatalf("/events structured: %d %s", code, b)
	}
	if code, b := post(`{"specversion":"1.0","id":"evt-2","source":"/tests","type":"user.created"}`); code != 202 {
		t.Fatalf("/events second event: %d %s", code, b)
	}
	// The Event Gateway's legacy mode: the Event header names the type.
	code, body, hdr = e.events(t, "POST", "/users", `{"id":8}`, "Event", "user.created", "Content-Type", "application/json", "X-Call-Id", "legacy-1")
	legacyID := hdr.Get("X-Call-Id")
	if code != 202 || legacyID == "" || legacyID == "legacy-1" {
		t.Fatalf("legacy Event header: %d %s %v", code, body, hdr)
	}
	if code, b := post(`{"specversion":"1.0","id":"evt-3","type":"user.created"}`); code != 400 || !strings.Contains(b, "source") {
		t.Fatalf("missing source: want 400 naming it, got %d %s", code, b)
	}
	// CloudEvents 1.0 strictness, and attribute values that would become
	// request headers: each a 400 naming what to fix; none is delivered.
	for js, want := range map[string]string{
		`{"specversion":"1.0","id":"bad-1","source":"/tests","type":"user.created","My_Ext":"x"}`:   `My_Ext`,
		`{"specversion":"1.0","id":"bad-2","source":"/tests","type":"user.created","myExt":"x"}`:    `myExt`,
		`{"specversion":"2.0","id":"bad-3","source":"/tests","type":"user.created"}`:                `\"1.0\"`,
		`{"specversion":"1.0","id":"bad-4","source":"/tests","type":"user.created","ext":"a\r\nb"}`: `\"ext\"`,
		`{"specversion":"1.0","id":"bad-5\u0000","source":"/tests","type":"user.created"}`:          `\"id\"`,
		// CloudEvents 0.1 too: delivered in binary mode, these are headers.
		`{"cloudEventsVersion":"0.1","eventID":"bad-7\r\nX-Injected: 1","source":"/tests","eventType":"user.created"}`:                       `\"id\"`,
		`{"cloudEventsVersion":"0.1","eventID":"bad-8","source":"/tests","eventType":"user.created","extensions":{"ext":"a\nb"}}`:            `extension ext`,
		`{"cloudEventsVersion":"0.1","eventID":"bad-9","source":"/tests\u007f","eventType":"user.created","contentType":"application/json"}`: `source`,
	} {
		if code, b := post(js); code != 400 || !strings.Contains(b, want) || !strings.Contains(b, `"errors"`) {
			t.Errorf("%s: want 400 naming %s, got %d %s", js, want, code, b)
		}
	}
	if code, b, _ := send(t, "POST", e.srv.URL+"/events", "x", "Ce-Specversion", "1.0", "Ce-Id", "bad-6", "Ce-Source", "/tests",
		"Ce-Type", "user.created", "Ce-Bad_name", "x"); code != 400 || !strings.Contains(b, "Bad_name") {
		t.Errorf("binary mode with a bad attribute name: %d %s", code, b)
	}
	ces := func() map[string]int {
		raw, _ := os.ReadFile(record)
		m := map[string]int{}
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) == 5 && f[1] == "user.created" {
				m[f[2]]++
			}
		}
		return m
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(outside)
		mu.Unlock()
		got := ces()
		for id := range got {
			if strings.HasPrefix(id, "bad-") {
				t.Fatalf("a refused event was delivered: %v", got)
			}
		}
		if got["evt-1"] == 2 && got["evt-2"] == 2 && got[legacyID] == 2 && n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: nimbus %v, outside %d (want evt-1, evt-2 and legacy-1 twice each, outside 3)", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if h := outside[0]; h.Get("Ce-Type") != "user.created" || h.Get("Ce-Source") != "/tests" || h.Get("X-Call-Id") == "" {
		t.Fatalf("outside endpoint got: %v", h)
	}
	extCall := outside[0].Get("X-Call-Id")
	mu.Unlock()
	// The outside endpoint's delivery is recorded under its space and functionId.
	if r := waitCall(t, e, extCall); r.Namespace != "default" || r.Function != "ext" || r.Mode != "async" {
		t.Fatalf("record of an outside delivery: %+v", r)
	}

	// CORS: a preflight for an allowed origin pattern, and one refused.
	if code, b := e.eg(t, "POST", "/cors", `{"method":"GET","path":"/hello/:name","allowedOrigins":["http://*.example.com"]}`); code != 201 {
		t.Fatalf("cors: %d %s", code, b)
	}
	_, _, hdr = e.events(t, "OPTIONS", "/hello/x", "", "Origin", "http://app.example.com", "Access-Control-Request-Method", "GET")
	if hdr.Get("Access-Control-Allow-Origin") != "http://app.example.com" || !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight: %v", hdr)
	}
	_, _, hdr = e.events(t, "OPTIONS", "/hello/x", "", "Origin", "http://evil.test", "Access-Control-Request-Method", "GET")
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from a refused origin: %v", hdr)
	}

	// Lists, and deletes refused while in use.
	code, b = func() (int, []byte) {
		c, bb, _ := e.do(t, "GET", "/v1/spaces/default/subscriptions", nil, true)
		return c, bb
	}()
	var subs struct{ Subscriptions []map[string]any }
	if json.Unmarshal(b, &subs); code != 200 || len(subs.Subscriptions) != 6 {
		t.Fatalf("list subscriptions: %d %s", code, b)
	}
	if code, b := e.eg(t, "DELETE", "/functions/hello", ""); code != 400 {
		t.Fatalf("delete a function in use: %d %s", code, b)
	}
	if code, b := e.eg(t, "DELETE", "/eventtypes/user.created", ""); code != 400 {
		t.Fatalf("delete an event type in use: %d %s", code, b)
	}
	for _, s := range subs.Subscriptions {
		if code, b := e.eg(t, "DELETE", "/subscriptions/"+s["subscriptionId"].(string), ""); code != 204 {
			t.Fatalf("delete subscription: %d %s", code, b)
		}
	}
	if code, b := e.eg(t, "DELETE", "/functions/hello", ""); code != 204 {
		t.Fatalf("delete function: %d %s", code, b)
	}
	if code, _ := e.eg(t, "GET", "/functions/hello", ""); code != 404 {
		t.Fatalf("deleted function still there: %d", code)
	}
	if code, _, _ := e.do(t, "GET", "/v1/status", nil, true); code != 200 {
		t.Fatalf("status: %d", code)
	}
}

// TestCloudEventsModes: /events takes binary, structured and batch mode,
// names a missing required attribute in its 400, and delivers each event to
// the function in binary mode.
func TestCloudEventsModes(t *testing.T) {
	e := newEnv(t)
	record := e.deployRecorder(t, "sink")
	e.eg(t, "POST", "/functions", `{"functionId":"sink","type":"nimbus","provider":{"function":"sink"}}`)
	e.eg(t, "POST", "/eventtypes", `{"name":"thing.happened"}`)
	if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"async","eventType":"thing.happened","functionId":"sink"}`); code != 201 {
		t.Fatalf("subscribe: %d %s", code, b)
	}
	post := func(ct, body string, hdr ...string) (int, string) {
		code, b, _ := send(t, "POST", e.srv.URL+"/events", body, append([]string{"Content-Type", ct}, hdr...)...)
		return code, b
	}
	cases := []struct {
		name, ct, body string
		hdr            []string
		code           int
		want           string
	}{
		{"binary", "text/plain", "hello", []string{"Ce-Specversion", "1.0", "Ce-Id", "b-1", "Ce-Source", "/t", "Ce-Type", "thing.happened"}, 202, `"deliveries":1`},
		{"structured", "application/cloudevents+json", `{"specversion":"1.0","id":"s-1","source":"/t","type":"thing.happened","data":"x"}`, nil, 202, `"deliveries":1`},
		{"batch", "application/cloudevents-batch+json", `[{"specversion":"1.0","id":"m-1","source":"/t","type":"thing.happened"},{"specversion":"1.0","id":"m-2","source":"/t","type":"thing.happened"}]`, nil, 202, `"deliveries":2,"events":2`},
		{"no subscriber", "application/cloudevents+json", `{"specversion":"1.0","id":"n-1","source":"/t","type":"other.type"}`, nil, 202, `"deliveries":0`},
		{"binary without source", "text/plain", "x", []string{"Ce-Specversion", "1.0", "Ce-Id", "b-2", "Ce-Type", "thing.happened"}, 400, "source"},
		{"structured without type", "application/cloudevents+json", `{"specversion":"1.0","id":"s-2","source":"/t"}`, nil, 400, "type"},
		{"structured without id", "application/cloudevents+json", `{"specversion":"1.0","source":"/t","type":"thing.happened"}`, nil, 400, "id"},
		{"batch with a bad one", "application/cloudevents-batch+json", `[{"specversion":"1.0","id":"m-3","source":"/t","type":"thing.happened"},{"specversion":"1.0","id":"m-4","type":"thing.happened"}]`, nil, 400, "source"},
		{"not JSON", "application/cloudevents+json", `{"specversion":`, nil, 400, "CloudEvent"},
	}
	for _, c := range cases {
		code, b := post(c.ct, c.body, c.hdr...)
		if code != c.code || !strings.Contains(b, c.want) {
			t.Errorf("%s: want %d with %q, got %d %s", c.name, c.code, c.want, code, b)
		}
	}
	want := []string{"b-1", "s-1", "m-1", "m-2"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		raw, _ := os.ReadFile(record)
		all := true
		for _, id := range want {
			all = all && strings.Contains(string(raw), "ce thing.happened "+id+" ")
		}
		if all {
			if strings.Contains(string(raw), " m-3 ") {
				t.Fatal("an event of a refused batch was delivered")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries in binary mode: %s", raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLargeEvent: a CloudEvent whose data is far beyond a NATS message
// (7 MiB; the embedded server's limit is 8 MiB, base64 in JSON included) is accepted and delivered intact to an async subscriber, through
// /events and through the events API alike.
func TestLargeEvent(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var got []string
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	defer outside.Close()
	if code, b := e.eg(t, "POST", "/functions", `{"functionId":"sink","type":"http","provider":{"url":"`+outside.URL+`"}}`); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	e.eg(t, "POST", "/eventtypes", `{"name":"big.event"}`)
	if code, b := e.eg(t, "POST", "/subscriptions", `{"type":"async","eventType":"big.event","functionId":"sink","path":"/big","eventFormat":"ce-1.0-binary"}`); code != 201 {
		t.Fatalf("subscribe: %d %s", code, b)
	}
	data := strings.Repeat("event-data;", 7<<20/11)
	ce := []string{"Ce-Specversion", "1.0", "Ce-Source", "/tests", "Ce-Type", "big.event", "Content-Type", "text/plain"}
	if code, b, _ := send(t, "POST", e.srv.URL+"/events", data, append(ce, "Ce-Id", "big-1")...); code != 202 {
		t.Fatalf("/events: %d %s", code, b)
	}
	if code, b, _ := e.events(t, "POST", "/big", data, append(ce, "Ce-Id", "big-2")...); code != 202 {
		t.Fatalf("events API: %d %s", code, b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 large events delivered", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		if g != data {
			t.Fatalf("a large event arrived as %d bytes, want %d intact", len(g), len(data))
		}
	}
}

// egDo calls the config API with the token in the SDK's form ("bearer").
func (e *env) egDo(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	code, b, _ := send(t, method, e.srv.URL+path, body, "Authorization", "bearer "+token, "Content-Type", "application/json")
	return code, b
}

// TestEventGatewayAsDefined: the config API as the Event Gateway's docs and
// source define it — the token's scheme in any case, every error in its
// shape, IDs of updates from the URL, its messages, IDs and spaces.
func TestEventGatewayAsDefined(t *testing.T) {
	e := newEnv(t)
	if code, b := e.egDo(t, "GET", "/v1/spaces/default/functions", ""); code != 200 || b != "{\"functions\":[]}\n" {
		t.Fatalf("lowercase bearer, empty list: %d %q", code, b)
	}
	code, b, _ := send(t, "GET", e.srv.URL+"/v1/spaces/default/functions", "", "Authorization", "bearer wrong")
	if code != 401 || !strings.HasPrefix(b, `{"errors":[{"message":`) {
		t.Fatalf("a wrong key: %d %s", code, b)
	}
	if code, b, _ := send(t, "GET", e.srv.URL+"/v1/status", ""); code != 200 || b != "" {
		t.Fatalf("status, with no credential: %d %q", code, b)
	}
	if code, b, _ := send(t, "GET", e.srv.URL+"/v1/metrics", ""); code != 200 {
		t.Fatalf("metrics: %d %s", code, b)
	}

	base := "/v1/spaces/default"
	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		// Unknown fields are ignored; the Event Gateway's own types are not
		// to be had; an authorizer must be a registered function.
		{"POST", "/eventtypes", `{"name":"user.created","colour":"red"}`, 201, `"name":"user.created"`},
		{"POST", "/eventtypes", `{"name":"user.created"}`, 409, `Event Type \"user.created\" already exists.`},
		{"POST", "/eventtypes", `{"name":"eventgateway.internal"}`, 400, `eventgateway.`},
		{"POST", "/eventtypes", `{"name":"guarded","authorizerId":"nope"}`, 400, `Authorizer function doesn't exists.`},
		{"POST", "/eventtypes", `not json`, 400, `Event Type doesn't validate. Validation error:`},
		// PUT: the ID is the URL's; the body may leave it out.
		{"PUT", "/eventtypes/user.created", `{"metadata":{"team":"a"}}`, 200, `"metadata":{"team":"a"}`},
		{"PUT", "/eventtypes/missing", `{}`, 404, `Event Type \"missing\" not found.`},
		{"POST", "/functions", `{"functionId":"f","type":"http","provider":{"url":"https://1.1.1.1/hook"},"extra":1}`, 201, `"functionId":"f"`},
		{"PUT", "/functions/f", `{"type":"http","provider":{"url":"https://1.1.1.1/other"}}`, 200, `"url":"https://1.1.1.1/other"`},
		{"PUT", "/functions/g", `{"type":"http","provider":{"url":"https://1.1.1.1/other"}}`, 404, `Function \"g\" not found.`},
		{"POST", "/functions", `{"functionId":"bad id","type":"http","provider":{"url":"https://1.1.1.1/"}}`, 400, `Function doesn't validate.`},
		// Subscription IDs are the Event Gateway's: the path escaped, then
		// base64url without padding.
		{"POST", "/subscriptions", `{"type":"async","eventType":"user.created","functionId":"f"}`, 201, `"subscriptionId":"YXN5bmMsdXNlci5jcmVhdGVkLGYsJTJGLFBPU1Q"`},
		{"POST", "/eventtypes", `{"name":"http.request"}`, 201, ``},
		{"POST", "/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"f","method":"get","path":"users/:id"}`, 201, `"subscriptionId":"c3luYyxodHRwLnJlcXVlc3QsJTJGdXNlcnMlMkY6aWQsR0VU"`},
		{"POST", "/subscriptions", `{"type":"async","eventType":"nope","functionId":"f"}`, 400, `Event Type \"nope\" not found.`},
		{"POST", "/subscriptions", `{"type":"async","eventType":"user.created","functionId":"nope"}`, 400, `Function \"nope\" not found.`},
		{"PUT", "/subscriptions/c3luYyxodHRwLnJlcXVlc3QsJTJGdXNlcnMlMkY6aWQsR0VU", `{"type":"sync","eventType":"http.request","functionId":"f","method":"GET","path":"/users/:id","metadata":{"v":"2"}}`, 200, `"metadata":{"v":"2"}`},
		{"PUT", "/subscriptions/c3luYyxodHRwLnJlcXVlc3QsJTJGdXNlcnMlMkY6aWQsR0VU", `{"type":"sync","eventType":"http.request","functionId":"f","method":"GET","path":"/people/:id"}`, 400, `Invalid update. 'Path' of existing subscription cannot be updated.`},
		{"PUT", "/subscriptions/eHh4", `{"type":"sync","eventType":"http.request","functionId":"f"}`, 404, `Subscription \"eHh4\" not found.`},
		{"DELETE", "/subscriptions/eHh4", ``, 404, `Subscription \"eHh4\" not found.`},
		// CORS: read, updated and deleted by the ID nimbus gives, as sent.
		{"POST", "/cors", `{"method":"GET","path":"/hello","allowedOrigins":["http://example.com"]}`, 201, `"corsId":"GET%2Fhello"`},
		{"GET", "/cors/GET%2Fhello", ``, 200, `"allowedOrigins":["http://example.com"]`},
		{"PUT", "/cors/GET%2Fhello", `{"method":"GET","path":"/hello","allowedOrigins":["*"]}`, 200, `"allowedOrigins":["*"]`},
		{"PUT", "/cors/GET%2Fhello", `{"method":"POST","path":"/hello"}`, 400, `Invalid update. 'Method' of existing CORS configuration cannot be updated.`},
		{"DELETE", "/cors/GET%2Fhello", ``, 204, ``},
		{"GET", "/cors/GET%2Fhello", ``, 404, `CORS configuration \"GET%2Fhello\" not found.`},
		// In use: refused before it is looked for, with its message.
		{"DELETE", "/functions/f", ``, 400, `Function cannot be deleted because it's subscribed to a least one event.`},
		{"DELETE", "/eventtypes/user.created", ``, 400, `Event type cannot be deleted because there are subscriptions using it.`},
		{"DELETE", "/functions/nope", ``, 404, `Function \"nope\" not found.`},
	}
	for _, s := range steps {
		code, b := e.egDo(t, s.method, base+s.path, s.body)
		if code != s.code || !strings.Contains(b, s.want) || (code >= 400 && !strings.HasPrefix(b, `{"errors":[{"message":`)) {
			t.Errorf("%s %s %s: want %d with %s, got %d %s", s.method, s.path, s.body, s.code, s.want, code, b)
		}
	}
	// Lists come newest ID first (the Event Gateway's descending order).
	code, b = e.egDo(t, "GET", base+"/eventtypes", "")
	if code != 200 || strings.Index(b, `"user.created"`) > strings.Index(b, `"http.request"`) {
		t.Fatalf("event types, descending: %s", b)
	}
	// Spaces follow the Event Gateway's rule, whatever nimbus maps them to.
	for _, space := range []string{"My_Space", "team.a", "abc"} {
		if code, b := e.egDo(t, "POST", "/v1/spaces/"+space+"/functions", `{"functionId":"f","type":"http","provider":{"url":"https://1.1.1.1/"}}`); code != 201 ||
			!strings.Contains(b, `"space":"`+space+`"`) {
			t.Errorf("space %s: %d %s", space, code, b)
		}
	}
	if code, b := e.egDo(t, "POST", "/v1/spaces/ab/functions", `{"functionId":"f","type":"http","provider":{"url":"https://1.1.1.1/"}}`); code != 400 || !strings.Contains(b, "space") {
		t.Errorf("a space of 2 characters: %d %s", code, b)
	}
	if got := events.Namespace("My_Space"); function.ValidateName("ns", got) != nil || got == events.Namespace("my-space") {
		t.Errorf("My_Space maps to %q", got)
	}
}

// egHook is an outside endpoint that records what it gets and answers by
// path.
type egHook struct {
	mu  sync.Mutex
	got []received
}

type received struct {
	path   string
	header http.Header
	body   string
}

func (h *egHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.got = append(h.got, received{r.URL.Path, r.Header.Clone(), string(b)})
	h.mu.Unlock()
	switch r.URL.Path {
	case "/envelope":
		w.Write([]byte(`{"statusCode":201,"headers":{"content-type":"text/html"},"body":"<head></head>"}`))
	case "/redirect":
		http.Redirect(w, r, "https://example.com/elsewhere", http.StatusFound)
	case "/missing":
		w.Header().Set("X-Own", "yes")
		http.Error(w, "no such thing", http.StatusNotFound)
	}
}

func (h *egHook) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		h.mu.Lock()
		got := append([]received(nil), h.got...)
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries arrived", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventGatewayEvents: CloudEvents 0.1 in (structured, binary, in an
// Event-header body) and out (functions of type http get the Event
// Gateway's envelope), http.request data as the Event Gateway shapes it,
// and sync answers: the envelope keeps its meaning, any other answer — a
// redirect, a 404 — reaches the caller as it is.
func TestEventGatewayEvents(t *testing.T) {
	e := newEnv(t)
	hook := &egHook{}
	ext := httptest.NewServer(hook)
	defer ext.Close()
	base := "/v1/spaces/default"
	for _, s := range []string{
		`/eventtypes {"name":"user.signup"}`,
		`/eventtypes {"name":"http.request"}`,
		`/functions {"functionId":"async","type":"http","provider":{"url":"` + ext.URL + `/async"}}`,
		`/functions {"functionId":"env","type":"http","provider":{"url":"` + ext.URL + `/envelope"}}`,
		`/functions {"functionId":"redir","type":"http","provider":{"url":"` + ext.URL + `/redirect"}}`,
		`/functions {"functionId":"missing","type":"http","provider":{"url":"` + ext.URL + `/missing"}}`,
		`/subscriptions {"type":"async","eventType":"user.signup","functionId":"async","path":"/signup"}`,
		`/subscriptions {"type":"sync","eventType":"http.request","functionId":"env","method":"POST","path":"/users/:id"}`,
		`/subscriptions {"type":"sync","eventType":"http.request","functionId":"redir","method":"GET","path":"/go"}`,
		`/subscriptions {"type":"sync","eventType":"http.request","functionId":"missing","method":"GET","path":"/missing"}`,
	} {
		path, body, _ := strings.Cut(s, " ")
		if code, b := e.egDo(t, "POST", base+path, body); code != 201 {
			t.Fatalf("%s: %d %s", s, code, b)
		}
	}
	// CloudEvents 0.1 in: structured, binary, and in an Event-header body.
	if code, b, _ := e.events(t, "POST", "/signup", `{"eventType":"user.signup","cloudEventsVersion":"0.1","source":"/users","eventID":"e-1","eventTime":"2026-11-26T10:00:00Z","contentType":"application/json","data":{"name":"ann"},"extensions":{"tenant":"t1"}}`,
		"Content-Type", "application/cloudevents+json"); code != 202 {
		t.Fatalf("CE 0.1 structured: %d %s", code, b)
	}
	if code, b, _ := e.events(t, "POST", "/signup", "plain words", "CE-EventType", "user.signup", "CE-CloudEventsVersion", "0.1",
		"CE-Source", "/users", "CE-EventID", "e-2", "CE-X-Tenant", "t2", "Content-Type", "text/plain"); code != 202 {
		t.Fatalf("CE 0.1 binary: %d %s", code, b)
	}
	if code, b, _ := e.events(t, "POST", "/signup", `{"eventType":"user.signup","cloudEventsVersion":"0.1","source":"/users","eventID":"e-3","data":"in a body"}`,
		"Event", "user.signup", "Content-Type", "application/json"); code != 202 {
		t.Fatalf("CE 0.1 in an Event-header body: %d %s", code, b)
	}
	if code, b, _ := e.events(t, "POST", "/signup", `{"eventType":"user.signup","cloudEventsVersion":"0.1","eventID":"e-4"}`,
		"Content-Type", "application/cloudevents+json"); code != 400 || !strings.Contains(b, "source") {
		t.Fatalf("CE 0.1 without source: %d %s", code, b)
	}
	if code, b, _ := e.events(t, "POST", "/signup", "x", "Event", "eventgateway.function.invoked"); code != 400 || !strings.Contains(b, "eventgateway.") {
		t.Fatalf("emitting an Event Gateway type: %d %s", code, b)
	}
	got := hook.wait(t, 3)
	byID := map[string]map[string]any{}
	for _, g := range got {
		var env map[string]any
		if g.path != "/async" || g.header.Get("Content-Type") != "application/cloudevents+json" || json.Unmarshal([]byte(g.body), &env) != nil ||
			env["cloudEventsVersion"] != "0.1" || env["eventType"] != "user.signup" || env["source"] != "/users" {
			t.Fatalf("a type http function gets the Event Gateway's envelope: %s %v %s", g.path, g.header, g.body)
		}
		byID[env["eventID"].(string)] = env
	}
	if d, _ := byID["e-1"]["data"].(map[string]any); d["name"] != "ann" || byID["e-1"]["eventTime"] != "2026-11-26T10:00:00Z" ||
		byID["e-1"]["extensions"].(map[string]any)["tenant"] != "t1" {
		t.Fatalf("CE 0.1 structured, out: %v", byID["e-1"])
	}
	if byID["e-2"]["data"] != base64.StdEncoding.EncodeToString([]byte("plain words")) || byID["e-2"]["extensions"].(map[string]any)["tenant"] != "t2" {
		t.Fatalf("CE 0.1 binary, out (text is base64, as the Event Gateway sends it): %v", byID["e-2"])
	}
	if byID["e-3"]["data"] != "in a body" {
		t.Fatalf("CE 0.1 in an Event-header body, out: %v", byID["e-3"])
	}

	// Sync: the envelope keeps its meaning.
	code, b, hdr := e.events(t, "POST", "/users/5?x=1&x=2", `{"a":1}`, "Content-Type", "application/json")
	if code != 201 || hdr.Get("Content-Type") != "text/html" || b != "<head></head>" {
		t.Fatalf("an envelope answer: %d %v %q", code, hdr, b)
	}
	last := hook.wait(t, 4)[3]
	var env struct {
		EventType string
		Data      struct {
			Headers map[string]string
			Query   map[string][]string
			Body    map[string]any
			Host    string
			Path    string
			Method  string
			Params  map[string]string
		}
	}
	if json.Unmarshal([]byte(last.body), &env) != nil || env.EventType != "http.request" || env.Data.Params["id"] != "5" ||
		strings.Join(env.Data.Query["x"], ",") != "1,2" || env.Data.Body["a"] != float64(1) || env.Data.Path != "/users/5" ||
		env.Data.Method != "POST" || env.Data.Headers["Content-Type"] != "application/json" || env.Data.Host == "" {
		t.Fatalf("http.request data as the Event Gateway shapes it: %s", last.body)
	}
	// Any other answer reaches the caller as it is.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(e.evsrv.URL + "/go")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://example.com/elsewhere" {
		t.Fatalf("a redirect from the function: %d %v", resp.StatusCode, resp.Header)
	}
	code, b, hdr = e.events(t, "GET", "/missing", "")
	if code != 404 || b != "no such thing\n" || hdr.Get("X-Own") != "yes" {
		t.Fatalf("a 404 from the function: %d %v %q", code, hdr, b)
	}
}
