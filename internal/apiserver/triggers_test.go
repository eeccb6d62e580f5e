package apiserver_test

import (
	"encoding/json"
	"strings"
	"testing"

	"nimbus/internal/trigger"
)

func TestTriggersAPI(t *testing.T) {
	e := newEnv(t)
	code, b, _ := e.do(t, "PUT", "/v1/triggers/nightly", strings.NewReader(`{"schedule":"0 3 * * *","function":"report","body":"{}","contentType":"application/json"}`), true)
	var tr trigger.Trigger
	if err := json.Unmarshal(b, &tr); code != 201 || err != nil || tr.Schedule != "0 3 * * *" || tr.Created.IsZero() {
		t.Fatalf("create: %d %s", code, b)
	}
	if code, b, _ = e.do(t, "PUT", "/v1/triggers/nightly", strings.NewReader(`{"schedule":"@hourly","function":"report"}`), true); code != 200 {
		t.Fatalf("replace: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/triggers/nightly", nil, true)
	if json.Unmarshal(b, &tr); code != 200 || tr.Schedule != "@hourly" {
		t.Fatalf("get: %d %s", code, b)
	}
	for body, field := range map[string]string{
		`{"schedule":"every day","function":"report"}`: "schedule",
		`{"schedule":"@hourly","function":"Bad_Name"}`: "function",
		`{"schedule":"@hourly"}`:                       "function",
	} {
		code, b, _ := e.do(t, "PUT", "/v1/triggers/bad", strings.NewReader(body), true)
		if er := decodeErr(t, b); code != 400 || er.Error.Field != field {
			t.Fatalf("%s: want 400 naming %s, got %d %s", body, field, code, b)
		}
	}
	if code, b, _ = e.do(t, "PUT", "/v1/triggers/bad", strings.NewReader(`{"schedule":"@hourly","function":"f","extra":1}`), true); code != 400 {
		t.Fatalf("unknown field: %d %s", code, b)
	}
	if code, _, _ = e.do(t, "GET", "/v1/triggers/bad", nil, true); code != 404 {
		t.Fatalf("an invalid trigger was stored: %d", code)
	}
	code, b, _ = e.do(t, "GET", "/v1/triggers", nil, true)
	var list struct{ Triggers []trigger.Trigger }
	if json.Unmarshal(b, &list); code != 200 || len(list.Triggers) != 1 {
		t.Fatalf("list: %d %s", code, b)
	}
	if code, _, _ = e.do(t, "DELETE", "/v1/triggers/nightly", nil, true); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	code, b, _ = e.do(t, "DELETE", "/v1/triggers/nightly", nil, true)
	if code != 404 || decodeErr(t, b).Error.Code != "trigger_not_found" {
		t.Fatalf("delete again: %d %s", code, b)
	}
}
