package events

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		ok            bool
		params        map[string]string
	}{
		{"/", "/", true, nil},
		{"/hello", "/hello", true, nil},
		{"/hello", "/hello/", true, nil},
		{"/hello", "/other", false, nil},
		{"/users/:id", "/users/42", true, map[string]string{"id": "42"}},
		{"/users/:id", "/users", false, nil},
		{"/users/:id", "/users/42/x", false, nil},
		{"/files/*path", "/files/a/b/c", true, map[string]string{"path": "a/b/c"}},
		{"/files/*path", "/files", false, nil},
	}
	for _, c := range cases {
		params, _, ok := match(c.pattern, c.path)
		if ok != c.ok || len(params) != len(c.params) {
			t.Errorf("%s vs %s: ok=%v params=%v", c.pattern, c.path, ok, params)
			continue
		}
		for k, v := range c.params {
			if params[k] != v {
				t.Errorf("%s vs %s: %s=%q, want %q", c.pattern, c.path, k, params[k], v)
			}
		}
	}
	_, static, _ := match("/users/me", "/users/me")
	_, param, _ := match("/users/:id", "/users/me")
	if static <= param {
		t.Error("a static segment must outrank a parameter")
	}
	for _, bad := range []string{"users", "/a/*rest/b", "/a/:", "/*"} {
		if validatePath(bad) == nil {
			t.Errorf("%q must be refused", bad)
		}
	}
}

func TestSubscriptionForms(t *testing.T) {
	old := Subscription{FunctionID: "hello", Event: "http", Method: "get", Path: "/hello"}
	if err := old.Normalize(); err != nil || old.Type != Sync || old.EventType != HTTPRequest || old.Method != "GET" {
		t.Fatalf("older http form: %+v %v", old, err)
	}
	custom := Subscription{FunctionID: "f", Event: "user.created"}
	if err := custom.Normalize(); err != nil || custom.Type != Async || custom.Path != "/" || custom.Method != "POST" {
		t.Fatalf("older custom-event form: %+v %v", custom, err)
	}
	a := Subscription{Type: Async, EventType: "e", FunctionID: "f1"}
	b := Subscription{Type: Async, EventType: "e", FunctionID: "f2"}
	a.Normalize()
	b.Normalize()
	if a.SubscriptionID == b.SubscriptionID {
		t.Fatal("async subscriptions of different functions must differ")
	}
	s1 := Subscription{Type: Sync, EventType: "e", FunctionID: "f1"}
	s2 := Subscription{Type: Sync, EventType: "e", FunctionID: "f2"}
	s1.Normalize()
	s2.Normalize()
	if s1.SubscriptionID != s2.SubscriptionID {
		t.Fatal("sync subscriptions on one path, method and type must share an ID (one only)")
	}
	for _, bad := range []Subscription{
		{Type: "push", EventType: "e", FunctionID: "f"},
		{Type: Sync, FunctionID: "f"},
		{Type: Sync, EventType: "e"},
		{Type: Sync, EventType: "e", FunctionID: "f", Method: "BREW"},
		{Event: "http", Type: Sync, FunctionID: "f"},
	} {
		if bad.Normalize() == nil {
			t.Errorf("%+v must be refused", bad)
		}
	}
}
