package lambdaapi

import (
	"testing"

	"nimbus/internal/store"
)

// TestResolve: Lambda names and ARNs map onto nimbus functions in the
// key's namespaces, and back.
func TestResolve(t *testing.T) {
	team := store.AccessKey{ID: "AKIATEST", Namespaces: []string{"team-a", "default"}}
	all := store.AccessKey{ID: "AKIAALL", Namespaces: []string{"*"}}
	for _, c := range []struct {
		key                store.AccessKey
		name               string
		ns, fn, q, errType string
	}{
		{team, "hello", "team-a", "hello", "", ""},
		{team, "default_hello", "default", "hello", "", ""},
		{team, "arn:aws:lambda:us-east-1:000000000000:function:hello", "team-a", "hello", "", ""},
		{team, "arn:aws:lambda:us-east-1:000000000000:function:default_hello:$LATEST", "default", "hello", "$LATEST", ""},
		{team, "other_hello", "", "", "", "AccessDeniedException"},
		{all, "hello", "default", "hello", "", ""},
		{all, "other_hello", "other", "hello", "", ""},
		{team, "Hello", "", "", "", "ValidationException"},
		{team, "a_b_c", "", "", "", "ValidationException"},
		{team, "arn:aws:lambda:us-east-1:000000000000:layer:x", "", "", "", "ValidationException"},
		{team, "arn:aws:lambda:us-east-1", "", "", "", "ValidationException"},
	} {
		ns, fn, q, err := resolve(c.key, c.name)
		if c.errType != "" {
			if err == nil || err.typ != c.errType {
				t.Errorf("%s: %v, want %s", c.name, err, c.errType)
			}
			continue
		}
		if err != nil || ns != c.ns || fn != c.fn || q != c.q {
			t.Errorf("%s: %s/%s:%s %v, want %s/%s:%s", c.name, ns, fn, q, err, c.ns, c.fn, c.q)
		}
		if got := LambdaName(c.key, ns, fn); got != c.name && c.q == "" && !isARN(c.name) {
			t.Errorf("%s named back as %s", c.name, got)
		}
	}
}

func isARN(s string) bool { return len(s) > 4 && s[:4] == "arn:" }
