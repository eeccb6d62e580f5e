package versions

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"nimbus/internal/backbone"
	"nimbus/internal/function"
	"nimbus/internal/store"
	"nimbus/internal/store/natsstore"
)

func newManager(t *testing.T) (*Manager, store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bb.Close() })
	st, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Manager{Store: st,
		Deploy: func(ctx context.Context, fn function.Function) (store.Record, error) {
			fn = fn.WithDefaults()
			if err := fn.Validate(); err != nil {
				return store.Record{}, err
			}
			return st.Create(ctx, fn)
		},
		Delete: func(ctx context.Context, ns, name string) error { return st.Delete(ctx, ns, name, 0) },
	}, st
}

// TestPublishResolveAliases: versions numbered from 1, never reused; an
// unchanged function publishes no new version; qualifiers resolve to the
// version's function; aliases name versions and keep a version from
// deletion; deleting the function's versions takes its aliases.
func TestPublishResolveAliases(t *testing.T) {
	m, st := newManager(t)
	ctx := context.Background()
	fn := function.Function{Name: "api", Namespace: "default", Command: []string{"./api"}, Package: "sha256:" + strings.Repeat("a", 64),
		Env: map[string]string{"V": "1"}, Scale: function.Scale{Min: 2}}.WithDefaults()
	cur, err := st.Create(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	v1, created, err := m.Publish(ctx, "default", "api", map[string]string{"note": "first"})
	if err != nil || !created || v1.Function.Name != "api--v1" || v1.Function.Version != 1 || v1.Function.VersionOf != "api" ||
		v1.Function.Env["V"] != "1" || v1.Function.Scale.Min != 0 || v1.Function.Annotations["note"] != "first" {
		t.Fatalf("publish: %+v %v %v", v1.Function, created, err)
	}
	if again, created, err := m.Publish(ctx, "default", "api", map[string]string{"note": "other"}); err != nil || created || again.Function.Version != 1 {
		t.Fatalf("an unchanged function published %+v (%v, %v)", again.Function, created, err)
	}
	fn.Env = map[string]string{"V": "2"}
	if _, err := st.Update(ctx, fn, cur.Revision); err != nil {
		t.Fatal(err)
	}
	v2, created, err := m.Publish(ctx, "default", "api", nil)
	if err != nil || !created || v2.Function.Version != 2 || v2.Function.Env["V"] != "2" {
		t.Fatalf("publish after a change: %+v %v %v", v2.Function, created, err)
	}
	if _, _, err := m.Publish(ctx, "default", "api--v1", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("publishing a version: %v", err)
	}
	if _, _, err := m.Publish(ctx, "default", "nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("publishing no function: %v", err)
	}

	if _, err := m.SetAlias(ctx, "default", "api", "live", AliasChange{Version: 1}, true); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ q, target, version string }{
		{"", "api", Latest}, {Latest, "api", Latest}, {"1", "api--v1", "1"}, {"2", "api--v2", "2"}, {"live", "api--v1", "1"},
	} {
		target, version, err := m.Resolve(ctx, "default", "api", c.q)
		if err != nil || target != c.target || version != c.version {
			t.Errorf("resolve %q: %s %s %v, want %s %s", c.q, target, version, err, c.target, c.version)
		}
	}
	for q, want := range map[string]error{"3": ErrNotFound, "0": ErrInvalid, "-1": ErrInvalid, "beta": ErrNotFound, "a b": ErrInvalid, "$latest": ErrInvalid} {
		if _, _, err := m.Resolve(ctx, "default", "api", q); !errors.Is(err, want) {
			t.Errorf("resolve %q: %v, want %v", q, err, want)
		}
	}
	if _, _, err := m.Resolve(ctx, "other", "api", "live"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another namespace resolves the alias: %v", err)
	}

	// Aliases: no second with a name, none to a missing version, none
	// named as a number; an update moves it.
	if _, err := m.SetAlias(ctx, "default", "api", "live", AliasChange{Version: 2}, true); !errors.Is(err, ErrExists) {
		t.Errorf("a second alias live: %v", err)
	}
	if _, err := m.SetAlias(ctx, "default", "api", "beta", AliasChange{Version: 9}, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("an alias of no version: %v", err)
	}
	if _, err := m.SetAlias(ctx, "default", "api", "42", AliasChange{Version: 1}, true); !errors.Is(err, ErrInvalid) {
		t.Errorf("an alias named as a number: %v", err)
	}
	if _, err := m.SetAlias(ctx, "default", "api", "beta", AliasChange{Version: 1}, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("updating no alias: %v", err)
	}
	d := "the live one"
	if a, err := m.SetAlias(ctx, "default", "api", "live", AliasChange{Version: 2, Description: &d}, false); err != nil || a.Version != 2 || a.Description != d {
		t.Fatalf("update: %+v %v", a, err)
	}
	if target, _, _ := m.Resolve(ctx, "default", "api", "live"); target != "api--v2" {
		t.Fatalf("after the update live runs %s", target)
	}
	if err := m.DeleteVersion(ctx, "default", "api", 2); !errors.Is(err, ErrInUse) {
		t.Fatalf("deleting a version an alias names: %v", err)
	}
	if err := m.DeleteAlias(ctx, "default", "api", "live"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteAlias(ctx, "default", "api", "live"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting it again: %v", err)
	}
	if err := m.DeleteVersion(ctx, "default", "api", 2); err != nil {
		t.Fatal(err)
	}
	// Numbers are not given again: after deleting 2, a change publishes 3.
	cur, _ = st.Get(ctx, "default", "api")
	fn.Env = map[string]string{"V": "3"}
	if _, err := st.Update(ctx, fn, cur.Revision); err != nil {
		t.Fatal(err)
	}
	if v3, _, err := m.Publish(ctx, "default", "api", nil); err != nil || v3.Function.Version != 3 {
		t.Fatalf("after deleting 2: %+v %v", v3.Function, err)
	}
	list, _, err := m.List(ctx, "default", "api")
	if err != nil || len(list) != 2 || list[0].Function.Version != 1 || list[1].Function.Version != 3 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	m.SetAlias(ctx, "default", "api", "live", AliasChange{Version: 3}, true)
	if err := m.DeleteAll(ctx, "default", "api"); err != nil {
		t.Fatal(err)
	}
	if all, _ := st.List(ctx, "default"); len(all) != 1 || all[0].Function.Name != "api" {
		t.Fatalf("after DeleteAll: %d functions", len(all))
	}
	if info, rev, _ := st.VersionInfo(ctx, "default", "api"); rev != 0 || len(info.Aliases) != 0 {
		t.Fatalf("after DeleteAll the aliases stay: %+v", info)
	}
}

// TestPublishLongName: a function whose versions' names would not be
// names cannot publish, and says why.
func TestPublishLongName(t *testing.T) {
	m, st := newManager(t)
	name := "a" + strings.Repeat("b", function.MaxVersionedName)
	fn := function.Function{Name: name, Namespace: "default", Command: []string{"./x"}, Package: "sha256:" + strings.Repeat("a", 64)}.WithDefaults()
	if _, err := st.Create(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Publish(context.Background(), "default", name, nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "characters") {
		t.Fatalf("%v", err)
	}
}

// TestAliasNeverNamesADeletedVersion: a version stops standing in the
// function's record before its function goes, and an alias is checked in
// that record as it is written: one set while a delete is under way finds
// the version gone even though its function still exists.
func TestAliasNeverNamesADeletedVersion(t *testing.T) {
	m, st := newManager(t)
	ctx := context.Background()
	fn := function.Function{Name: "api", Namespace: "default", Command: []string{"./api"}, Package: "sha256:" + strings.Repeat("a", 64)}.WithDefaults()
	if _, err := st.Create(ctx, fn); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Publish(ctx, "default", "api", nil); err != nil {
		t.Fatal(err)
	}
	// A delete's first step, its second (the function's removal) not yet.
	info, rev, _ := st.VersionInfo(ctx, "default", "api")
	info.Versions = nil
	if err := st.PutVersionInfo(ctx, info, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "default", "api--v1"); err != nil {
		t.Fatalf("the version's function should still be there: %v", err)
	}
	if _, err := m.SetAlias(ctx, "default", "api", "live", AliasChange{Version: 1}, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an alias of a version being deleted: %v", err)
	}
	if _, _, err := m.Resolve(ctx, "default", "api", "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a version being deleted resolves: %v", err)
	}
}
