package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/calls"
)

// TestTriggersCallRecordsCallbacks drives cron triggers, call records and
// callbacks through the built binary: a trigger fires each second, each
// firing runs once and is recorded; deleting it stops it; a restart does not
// fire again what fired before; a callback reaches an allow-listed loopback
// receiver and one to a refused address is a 400.
func TestTriggersCallRecordsCallbacks(t *testing.T) {
	data := dataDir(t)
	n := start(t, data, "--allow-outbound", "127.0.0.1")
	dir, record := ledgerFunction(t, "ticked", "")
	n.mustCLI("deploy", dir)

	out := n.mustCLI("trigger", "create", "tick", "--schedule", "@every 1s", "--function", "ticked", "--path", "/record", "-d", "payload")
	if !strings.Contains(out, "Created trigger tick") {
		t.Fatalf("trigger create: %s", out)
	}
	if out := n.mustCLI("trigger", "list"); !strings.Contains(out, "@every 1s") || !strings.Contains(out, "ticked") {
		t.Fatalf("trigger list: %s", out)
	}
	cronRuns := func() map[string]int {
		m := map[string]int{}
		for id, c := range executed(record) {
			if strings.HasPrefix(id, "cron-") {
				m[id] = c
			}
		}
		return m
	}
	waitUntil(t, "three firings", 20*time.Second, func() bool { return len(cronRuns()) >= 3 })
	var some string
	for id, c := range cronRuns() {
		if c != 1 {
			t.Fatalf("firing %s ran %d times", id, c)
		}
		some = id
	}
	waitUntil(t, "the firing's call record", 10*time.Second, func() bool {
		out, _, code := n.cli("calls", "get", some, "-o", "json")
		var r calls.Record
		return code == 0 && json.Unmarshal([]byte(out), &r) == nil && r.Mode == "async" && r.State == "done" && r.Status == 200
	})
	waitUntil(t, "three call records", 10*time.Second, func() bool {
		var list []calls.Record
		return json.Unmarshal([]byte(n.mustCLI("calls", "list", "--function", "ticked", "-o", "json")), &list) == nil && len(list) >= 3
	})
	if out := n.mustCLI("calls", "list"); !strings.Contains(out, "CALL ID") || !strings.Contains(out, "ticked.default") {
		t.Fatalf("calls list table: %s", out)
	}

	// Stop, wait, restart: the times fired before do not fire again.
	if code := n.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	before := cronRuns()
	time.Sleep(1500 * time.Millisecond)
	n.launch("--allow-outbound", "127.0.0.1")
	waitUntil(t, "firings after the restart", 20*time.Second, func() bool { return len(cronRuns()) >= len(before)+2 })
	for id, c := range cronRuns() {
		if c != 1 {
			t.Fatalf("after restart, firing %s ran %d times", id, c)
		}
	}
	n.mustCLI("trigger", "delete", "tick")
	deleted := time.Now().Unix()
	time.Sleep(3 * time.Second) // what was queued before the delete may still run; nothing later may fire
	for id := range cronRuns() {
		at, _ := strconv.ParseInt(id[strings.LastIndex(id, "-")+1:], 10, 64)
		if at > deleted+1 { // +1: a pass may have been firing as the delete landed
			t.Fatalf("trigger fired for %s, after its delete at %s", time.Unix(at, 0).UTC(), time.Unix(deleted, 0).UTC())
		}
	}
	if _, errOut, code := n.cli("trigger", "create", "bad", "--schedule", "every day", "--function", "ticked"); code != 2 || !strings.Contains(errOut, "schedule") {
		t.Fatalf("bad schedule: exit %d %q", code, errOut)
	}

	// A callback to an allow-listed loopback receiver.
	var mu sync.Mutex
	var got []http.Header
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Clone())
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	code, _, hdr := n.invoke("POST", "/async-function/ticked", "echo me", "X-Callback-Url", recv.URL+"/cb")
	if code != 202 {
		t.Fatalf("async with callback: %d", code)
	}
	waitUntil(t, "the callback", 15*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	if got[0].Get("X-Call-Id") != hdr.Get("X-Call-Id") || got[0].Get("X-Function-Status") != "200" || bodies[0] != "echo me" {
		t.Fatalf("callback: %v %q", got[0], bodies[0])
	}
	code, body, _ := n.invoke("POST", "/async-function/ticked", "x", "X-Callback-Url", "http://169.254.169.254/latest/meta-data/")
	if code != 400 || !strings.Contains(body, "invalid_callback") {
		t.Fatalf("metadata callback: %d %s", code, body)
	}
}

// TestEventGatewayThroughBinary: the Event Gateway's documented register,
// subscribe and emit calls — the older tutorial form — against the built
// binary's config API (with the admin token) and its events listener.
func TestEventGatewayThroughBinary(t *testing.T) {
	n := start(t, dataDir(t))
	if n.Events == "" {
		t.Fatalf("the banner names no events API:\n%s", n.out)
	}
	dir, record := ledgerFunction(t, "greeter", "")
	n.mustCLI("deploy", dir)
	token := strings.TrimSpace(readFile(t, n.dataDir+"/admin-token"))
	cfg := func(method, path, body string) (int, string) {
		code, b, _ := n.invoke(method, path, body, "Authorization", "Bearer "+token, "Content-Type", "application/json")
		return code, b
	}
	if code, b := cfg("POST", "/v1/spaces/default/functions", `{"functionId":"greeter","space":"default","provider":{"type":"nimbus","function":"greeter"}}`); code != 201 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b := cfg("POST", "/v1/spaces/default/subscriptions", `{"functionId":"greeter","event":"http","method":"GET","path":"/greet/:who"}`); code != 201 {
		t.Fatalf("subscribe: %d %s", code, b)
	}
	if code, b := cfg("POST", "/v1/spaces/default/eventtypes", `{"name":"order.placed"}`); code != 201 {
		t.Fatalf("event type: %d %s", code, b)
	}
	if code, b := cfg("POST", "/v1/spaces/default/subscriptions", `{"type":"async","eventType":"order.placed","functionId":"greeter","path":"/orders"}`); code != 201 {
		t.Fatalf("async subscribe: %d %s", code, b)
	}
	if code, _ := cfg("GET", "/v1/status", ""); code != 200 {
		t.Fatalf("status: %d", code)
	}
	resp, err := http.Get(n.Events + "/greet/ada")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Event-Type") != "http.request" || !strings.Contains(string(b), `"who":"ada"`) {
		t.Fatalf("sync http.request: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	req, _ := http.NewRequest("POST", n.Events+"/orders", strings.NewReader(`{"order":1}`))
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "o-1", "Ce-Source": "/shop", "Ce-Type": "order.placed", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("CloudEvent: %d", resp.StatusCode)
	}
	waitUntil(t, "the async delivery", 15*time.Second, func() bool { return strings.Contains(readFile(t, record), "ce order.placed o-1 ") })
	// Survives a restart: the configuration is in the backbone.
	if code := n.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	n.launch()
	if resp, err = http.Get(n.Events + "/greet/bob"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after restart: %d", resp.StatusCode)
	}
}

func readFile(t *testing.T, path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
