package apiserver_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"nimbus/internal/store"
)

// TestAccessKeys: a key's secret is shown once; lists never show it; bad
// requests name the field and store nothing; delete and delete again.
func TestAccessKeys(t *testing.T) {
	e := newEnv(t)
	code, b, _ := e.do(t, "POST", "/v1/keys", strings.NewReader(`{"namespaces":["default","team-a"],"description":"ci"}`), true)
	var k store.AccessKey
	if err := json.Unmarshal(b, &k); code != 201 || err != nil {
		t.Fatalf("create: %d %s", code, b)
	}
	if !regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`).MatchString(k.ID) || len(k.Secret) != 40 || len(k.Namespaces) != 2 || k.Created.IsZero() {
		t.Fatalf("created key: %+v", k)
	}
	stored, err := e.store.Key(t.Context(), k.ID)
	if err != nil || stored.Secret != k.Secret {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	for _, c := range []struct{ body, field string }{
		{`{}`, "namespaces"},
		{`{"namespaces":[]}`, "namespaces"},
		{`{"namespaces":["Bad_NS"]}`, "namespaces[0]"},
		{`{"namespaces":["default","a.b"]}`, "namespaces[1]"},
		{`{"namespaces":["*"],"description":"` + strings.Repeat("x", 300) + `"}`, "description"},
	} {
		code, b, _ := e.do(t, "POST", "/v1/keys", strings.NewReader(c.body), true)
		if code != 400 || decodeErr(t, b).Error.Field != c.field {
			t.Errorf("%s: %d %s", c.body, code, b)
		}
	}
	if code, b, _ := e.do(t, "POST", "/v1/keys", strings.NewReader(`{"namespaces":["*"],"secret":"mine"}`), true); code != 400 {
		t.Errorf("a chosen secret: %d %s", code, b)
	}
	code, b, _ = e.do(t, "GET", "/v1/keys", nil, true)
	if code != 200 || !strings.Contains(string(b), k.ID) || strings.Contains(string(b), k.Secret) || strings.Contains(string(b), `"secret"`) {
		t.Fatalf("list: %d %s", code, b)
	}
	var list struct{ Keys []store.AccessKey }
	json.Unmarshal(b, &list)
	if len(list.Keys) != 1 {
		t.Fatalf("refused requests stored keys: %s", b)
	}
	if code, b, _ := e.do(t, "DELETE", "/v1/keys/not-a-key", nil, true); code != 400 || decodeErr(t, b).Error.Field != "id" {
		t.Fatalf("delete a bad id: %d %s", code, b)
	}
	if code, _, _ := e.do(t, "DELETE", "/v1/keys/"+k.ID, nil, true); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, b, _ := e.do(t, "DELETE", "/v1/keys/"+k.ID, nil, true); code != 404 || decodeErr(t, b).Error.Code != "key_not_found" {
		t.Fatalf("delete again: %d %s", code, b)
	}
}
