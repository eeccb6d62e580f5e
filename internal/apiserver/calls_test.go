package apiserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"nimbus/internal/calls"
)

// TestCallRecords: a sync call through the real gateway leaves a record
// that /v1/calls finds by id and by function; a failing call records its
// status and error; an unknown id is a 404 with a stable code.
func TestCallRecords(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	if code, b, _ := e.do(t, "PUT", "/v1/functions/rec", spec(digest, ""), true); code != 201 {
		t.Fatalf("deploy: %d %s", code, b)
	}
	waitInvoke(t, e, "/function/rec", "warm")
	req, _ := http.NewRequest("POST", e.srv.URL+"/function/rec", strings.NewReader("hello"))
	req.Header.Set("X-Call-Id", "my-trace-1") // kept as the correlation id
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	okID := resp.Header.Get("X-Call-Id")
	req, _ = http.NewRequest("GET", e.srv.URL+"/function/rec/fail", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("/fail answered %d", resp.StatusCode)
	}
	failID := resp.Header.Get("X-Call-Id")

	ok := waitCall(t, e, okID)
	if ok.Function != "rec" || ok.Namespace != "default" || ok.Mode != calls.Sync || ok.State != calls.Done ||
		ok.Status != 200 || ok.Attempts != 1 || ok.Duration <= 0 || ok.Start.IsZero() || ok.Error != "" || ok.CorrelationID != "my-trace-1" {
		t.Fatalf("record of a good call: %+v", ok)
	}
	bad := waitCall(t, e, failID)
	if bad.Status != 500 {
		t.Fatalf("record of a failed call: %+v", bad)
	}

	code, b, _ := e.do(t, "GET", "/v1/calls?function=rec&limit=2", nil, true)
	var list struct{ Calls []calls.Record }
	if err := json.Unmarshal(b, &list); code != 200 || err != nil {
		t.Fatalf("list: %d %s", code, b)
	}
	if len(list.Calls) != 2 || list.Calls[0].CallID != failID || list.Calls[1].CallID != okID {
		t.Fatalf("list, newest first, limit 2: %s", b)
	}
	code, b, _ = e.do(t, "GET", "/v1/calls?function=other", nil, true)
	if code != 200 || strings.Contains(string(b), okID) {
		t.Fatalf("list of another function: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/calls/nosuch", nil, true)
	if code != 404 || decodeErr(t, b).Error.Code != "call_not_found" {
		t.Fatalf("unknown call: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/calls?limit=0", nil, true)
	if code != 400 || decodeErr(t, b).Error.Code != "invalid_request" {
		t.Fatalf("bad limit: %d %s", code, b)
	}
	// An async call is recorded when accepted (queued), then when run.
	req, _ = http.NewRequest("POST", e.srv.URL+"/async-function/rec", strings.NewReader("later"))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("async: %d", resp.StatusCode)
	}
	asyncID := resp.Header.Get("X-Call-Id")
	if a := waitCall(t, e, asyncID); a.Mode != calls.Async || (a.State != calls.Queued && a.State != calls.Done) {
		t.Fatalf("accepted async call: %+v", a)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a := waitCall(t, e, asyncID); a.State != calls.Done || a.Attempts != 1 || a.Status != 200; a = waitCall(t, e, asyncID) {
		if time.Now().After(deadline) {
			t.Fatalf("async call not recorded as run: %+v", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitCall(t *testing.T, e *env, id string) calls.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, b, _ := e.do(t, "GET", "/v1/calls/"+id, nil, true)
		if code == 200 {
			var r calls.Record
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record of %s: %d %s", id, code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
