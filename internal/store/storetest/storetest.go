// Package storetest is the conformance suite of store.Store. Every backend runs
// it from its own tests with a fresh, empty store per call of newStore.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

// Run runs every conformance test against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := map[string]func(*testing.T, store.Store){
		"CreateGet":        testCreateGet,
		"UpdateCAS":        testUpdateCAS,
		"List":             testList,
		"Delete":           testDelete,
		"Revisions":        testRevisions,
		"Keys":             testKeys,
		"VersionInfo":      testVersionInfo,
		"Watch":            testWatch,
		"Packages":         testPackages,
		"LogsReadAndSince": testLogs,
		"LogsFollow":       testLogsFollow,
		"Secrets":          testSecrets,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, newStore(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func fn(ns, name string) function.Function {
	return function.Function{Name: name, Namespace: ns, Command: []string{"./x"},
		Package: "sha256:" + fmt.Sprintf("%064x", 1)}.WithDefaults()
}

func testCreateGet(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.Get(c, "default", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of missing: want ErrNotFound, got %v", err)
	}
	f := fn("default", "hello")
	f.Env = map[string]string{"A": "1"}
	r, err := s.Create(c, f)
	if err != nil || r.Revision == 0 {
		t.Fatalf("Create: %v rev=%d", err, r.Revision)
	}
	if _, err := s.Create(c, f); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create: want ErrExists, got %v", err)
	}
	got, err := s.Get(c, "default", "hello")
	if err != nil || got.Revision != r.Revision || got.Function.Env["A"] != "1" || got.Function.Scale != f.Scale {
		t.Fatalf("Get: %+v %v", got, err)
	}
	if _, err := s.Get(c, "other", "hello"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("namespaces must be separate, got %v", err)
	}
}

func testUpdateCAS(t *testing.T, s store.Store) {
	c := ctx(t)
	r, err := s.Create(c, fn("default", "f"))
	if err != nil {
		t.Fatal(err)
	}
	f := r.Function
	f.Command = []string{"./y"}
	r2, err := s.Update(c, f, r.Revision)
	if err != nil || r2.Revision <= r.Revision {
		t.Fatalf("Update: %v (rev %d after %d)", err, r2.Revision, r.Revision)
	}
	if _, err := s.Update(c, f, r.Revision); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Update: want ErrConflict, got %v", err)
	}
	got, _ := s.Get(c, "default", "f")
	if got.Function.Command[0] != "./y" || got.Revision != r2.Revision {
		t.Fatalf("after update: %+v", got)
	}
	if _, err := s.Update(c, fn("default", "missing"), 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update of missing: want ErrNotFound, got %v", err)
	}
}

func testList(t *testing.T, s store.Store) {
	c := ctx(t)
	if l, err := s.List(c, ""); err != nil || len(l) != 0 {
		t.Fatalf("empty List: %v %v", l, err)
	}
	for _, k := range [][2]string{{"default", "b"}, {"default", "a"}, {"team", "a"}} {
		if _, err := s.Create(c, fn(k[0], k[1])); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(c, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("List all: %d %v", len(all), err)
	}
	def, _ := s.List(c, "default")
	if len(def) != 2 || def[0].Function.Name != "a" || def[1].Function.Name != "b" {
		t.Fatalf("List default not sorted or wrong: %+v", def)
	}
	if err := s.Delete(c, "default", "a", 0); err != nil {
		t.Fatal(err)
	}
	if def, _ := s.List(c, "default"); len(def) != 1 {
		t.Fatalf("deleted function still listed: %+v", def)
	}
}

func testDelete(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.Delete(c, "default", "nope", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete of missing: want ErrNotFound, got %v", err)
	}
	r, _ := s.Create(c, fn("default", "d"))
	if err := s.Delete(c, "default", "d", r.Revision+5); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Delete at wrong rev: want ErrConflict, got %v", err)
	}
	if err := s.Delete(c, "default", "d", r.Revision); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(c, "default", "d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := s.Create(c, fn("default", "d")); err != nil {
		t.Fatalf("re-Create after Delete: %v", err)
	}
}

func testRevisions(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.Revisions(c, "default", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Revisions of a missing function: want ErrNotFound, got %v", err)
	}
	f := fn("default", "r")
	r1, err := s.Create(c, f)
	if err != nil {
		t.Fatal(err)
	}
	f.Env = map[string]string{"V": "2"}
	r2, err := s.Update(c, f, r1.Revision)
	if err != nil {
		t.Fatal(err)
	}
	s.Create(c, fn("default", "other")) // another key's writes are not its history
	f.Env = map[string]string{"V": "3"}
	r3, err := s.Update(c, f, r2.Revision)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := s.Revisions(c, "default", "r")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range revs {
		got = append(got, fmt.Sprintf("%d:%s", r.Revision, r.Function.Env["V"]))
	}
	want := []string{fmt.Sprintf("%d:3", r3.Revision), fmt.Sprintf("%d:2", r2.Revision), fmt.Sprintf("%d:", r1.Revision)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("revisions %v, want %v (newest first)", got, want)
	}
	// Deleted, it has none; created again, only the new one's.
	if err := s.Delete(c, "default", "r", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revisions(c, "default", "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Revisions after delete: want ErrNotFound, got %v", err)
	}
	r4, err := s.Create(c, fn("default", "r"))
	if err != nil {
		t.Fatal(err)
	}
	if revs, err := s.Revisions(c, "default", "r"); err != nil || len(revs) != 1 || revs[0].Revision != r4.Revision {
		t.Fatalf("Revisions after re-create: %v %v", revs, err)
	}
}

// testVersionInfo: a zero record before any; compare-and-set on the
// revision, a create racing another is a conflict; delete, then anew.
func testVersionInfo(t *testing.T, s store.Store) {
	c := ctx(t)
	v, rev, err := s.VersionInfo(c, "default", "fn")
	if err != nil || rev != 0 || v.Namespace != "default" || v.Function != "fn" || v.Last != 0 || len(v.Aliases) != 0 {
		t.Fatalf("before any: %+v %d %v", v, rev, err)
	}
	v.Last = 1
	if err := s.PutVersionInfo(c, v, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVersionInfo(c, v, 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second create: want ErrConflict, got %v", err)
	}
	got, rev, err := s.VersionInfo(c, "default", "fn")
	if err != nil || rev == 0 || got.Last != 1 {
		t.Fatalf("after create: %+v %d %v", got, rev, err)
	}
	got.Last, got.Aliases = 2, []store.Alias{{Name: "live", Version: 2, Updated: time.Now().UTC().Truncate(time.Second)}}
	if err := s.PutVersionInfo(c, got, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVersionInfo(c, got, rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale revision: want ErrConflict, got %v", err)
	}
	if v, _, _ := s.VersionInfo(c, "other", "fn"); v.Last != 0 {
		t.Fatalf("another namespace's function sees %+v", v)
	}
	now, _, err := s.VersionInfo(c, "default", "fn")
	if err != nil || now.Last != 2 || len(now.Aliases) != 1 || now.Aliases[0].Name != "live" || now.Aliases[0].Version != 2 {
		t.Fatalf("after update: %+v %v", now, err)
	}
	if err := s.DeleteVersionInfo(c, "default", "fn"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVersionInfo(c, "default", "fn"); err != nil {
		t.Fatalf("deleting none: %v", err)
	}
	if v, rev, err := s.VersionInfo(c, "default", "fn"); err != nil || rev != 0 || v.Last != 0 {
		t.Fatalf("after delete: %+v %d %v", v, rev, err)
	}
	if err := s.PutVersionInfo(c, store.VersionInfo{Namespace: "default", Function: "fn", Last: 1}, 0); err != nil {
		t.Fatalf("anew after delete: %v", err)
	}
}

func testKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	if list, err := s.ListKeys(c); err != nil || len(list) != 0 {
		t.Fatalf("no keys yet: %v %v", list, err)
	}
	k := store.AccessKey{ID: "AKIATEST000000000002", Secret: "s3cret", Namespaces: []string{"default"}, Created: time.Now().UTC().Truncate(time.Second)}
	if err := s.CreateKey(c, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(c, store.AccessKey{ID: k.ID, Secret: "other"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a taken id: want ErrExists, got %v", err)
	}
	s.CreateKey(c, store.AccessKey{ID: "AKIATEST000000000001", Secret: "x", Namespaces: []string{"*"}})
	got, err := s.Key(c, k.ID)
	if err != nil || got.Secret != "s3cret" || got.Namespaces[0] != "default" || !got.Created.Equal(k.Created) {
		t.Fatalf("Key: %+v %v", got, err)
	}
	list, err := s.ListKeys(c)
	if err != nil || len(list) != 2 || list[0].ID != "AKIATEST000000000001" || list[0].Secret != "" || list[1].Secret != "" {
		t.Fatalf("ListKeys (sorted, no secrets): %+v %v", list, err)
	}
	if err := s.DeleteKey(c, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(c, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Key after delete: %v", err)
	}
	if err := s.DeleteKey(c, k.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteKey of a missing key: %v", err)
	}
}

func testWatch(t *testing.T, s store.Store) {
	c := ctx(t)
	s.Create(c, fn("default", "before"))
	events, initial, err := s.Watch(c)
	if err != nil {
		t.Fatal(err)
	}
	next := func() store.Event {
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no watch event within 5s")
		}
		return store.Event{}
	}
	if e := next(); e.Type != store.EventPut || e.Record.Function.Name != "before" {
		t.Fatalf("first event: %+v", e)
	}
	select {
	case <-initial:
	case <-time.After(5 * time.Second):
		t.Fatal("initial state never marked done")
	}
	r, _ := s.Create(c, fn("default", "after"))
	if e := next(); e.Type != store.EventPut || e.Record.Function.Name != "after" || e.Record.Revision != r.Revision {
		t.Fatalf("create event: %+v", e)
	}
	s.Delete(c, "default", "after", 0)
	if e := next(); e.Type != store.EventDelete || e.Record.Function.Name != "after" || e.Record.Function.Namespace != "default" {
		t.Fatalf("delete event: %+v", e)
	}
}

func testPackages(t *testing.T, s store.Store) {
	c := ctx(t)
	data := bytes.Repeat([]byte("nimbus package "), 100_000) // 1.5 MB: several chunks
	sum := sha256.Sum256(data)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if _, err := s.StatPackage(c, want); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Stat before Put: %v", err)
	}
	info, err := s.PutPackage(c, bytes.NewReader(data))
	if err != nil || info.Digest != want || info.Size != int64(len(data)) {
		t.Fatalf("PutPackage: %+v %v", info, err)
	}
	again, err := s.PutPackage(c, bytes.NewReader(data))
	if err != nil || again != info {
		t.Fatalf("second PutPackage: %+v %v", again, err)
	}
	rc, err := s.OpenPackage(c, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("package bytes differ (%d vs %d): %v", len(got), len(data), err)
	}
	if _, err := s.OpenPackage(c, "sha256:"+fmt.Sprintf("%064x", 7)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open of missing: %v", err)
	}
}

func collect(t *testing.T, s store.Store, ns, name string, since time.Time) []string {
	var out []string
	err := s.ReadLogs(ctx(t), ns, name, since, false, func(l store.LogLine) error {
		out = append(out, l.Text)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogs(t *testing.T, s store.Store) {
	c := ctx(t)
	if got := collect(t, s, "default", "quiet", time.Time{}); len(got) != 0 {
		t.Fatalf("no logs expected, got %v", got)
	}
	t0 := time.Now()
	for i := range 3 {
		s.AppendLog(c, store.LogLine{Time: time.Now(), Namespace: "default", Function: "f", Instance: "i1", Stream: "stdout", Text: fmt.Sprint("line ", i)})
	}
	s.AppendLog(c, store.LogLine{Time: time.Now(), Namespace: "default", Function: "g", Text: "other"})
	waitFor(t, "3 lines", func() bool { return len(collect(t, s, "default", "f", time.Time{})) == 3 })
	if got := collect(t, s, "default", "f", t0.Add(-time.Second)); len(got) != 3 || got[0] != "line 0" || got[2] != "line 2" {
		t.Fatalf("logs in order: %v", got)
	}
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	s.AppendLog(c, store.LogLine{Time: time.Now(), Namespace: "default", Function: "f", Text: "late"})
	waitFor(t, "late line", func() bool { return len(collect(t, s, "default", "f", time.Time{})) == 4 })
	if got := collect(t, s, "default", "f", mid); len(got) != 1 || got[0] != "late" {
		t.Fatalf("since filter: %v", got)
	}
	if got := collect(t, s, "default", "f", time.Now().Add(time.Hour)); len(got) != 0 {
		t.Fatalf("since in the future: %v", got)
	}
	// Lines with an ID (several gateways following one pod) are kept
	// once; lines without, each time.
	at := time.Now()
	for range 3 {
		s.AppendLog(c, store.LogLine{Time: at, Namespace: "default", Function: "d", Instance: "p", Stream: "stdout", Text: "followed", ID: "p/1"})
		s.AppendLog(c, store.LogLine{Time: at, Namespace: "default", Function: "d", Instance: "p", Stream: "stdout", Text: "plain"})
	}
	s.AppendLog(c, store.LogLine{Time: at, Namespace: "default", Function: "d", Instance: "p", Stream: "stdout", Text: "followed", ID: "p/2"})
	waitFor(t, "5 lines", func() bool { return len(collect(t, s, "default", "d", time.Time{})) >= 5 })
	time.Sleep(50 * time.Millisecond)
	if got := collect(t, s, "default", "d", time.Time{}); len(got) != 5 {
		t.Fatalf("lines with ids appended thrice: %v, want each id once and each plain line", got)
	}
}

func testLogsFollow(t *testing.T, s store.Store) {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.AppendLog(c, store.LogLine{Time: time.Now(), Namespace: "default", Function: "f", Text: "first"})
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.ReadLogs(c, "default", "f", time.Time{}, true, func(l store.LogLine) error {
			got <- l.Text
			return nil
		})
	}()
	want := []string{"first", "second"}
	go func() {
		time.Sleep(100 * time.Millisecond)
		s.AppendLog(c, store.LogLine{Time: time.Now(), Namespace: "default", Function: "f", Text: "second"})
	}()
	for _, w := range want {
		select {
		case l := <-got:
			if l != w {
				t.Fatalf("follow: got %q want %q", l, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("follow: %q never arrived", w)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop when its context ended")
	}
}

func testSecrets(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.SecretValue(c, "default", "db"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	if err := s.PutSecret(c, "default", "db", []byte("pw1"), false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing secret: want ErrNotFound, got %v", err)
	}
	if err := s.PutSecret(c, "default", "db", []byte("pw1"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(c, "default", "db", []byte("pw2"), true); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: want ErrExists, got %v", err)
	}
	if err := s.PutSecret(c, "default", "db", []byte("pw2"), false); err != nil {
		t.Fatal(err)
	}
	if v, err := s.SecretValue(c, "default", "db"); err != nil || string(v) != "pw2" {
		t.Fatalf("value: %q %v", v, err)
	}
	s.PutSecret(c, "team", "api", []byte("k"), true)
	all, err := s.ListSecrets(c, "")
	if err != nil || len(all) != 2 || all[0].Name != "db" || all[1].Namespace != "team" {
		t.Fatalf("list: %+v %v", all, err)
	}
	if def, _ := s.ListSecrets(c, "default"); len(def) != 1 {
		t.Fatalf("namespace list: %+v", def)
	}
	if err := s.DeleteSecret(c, "default", "db"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(c, "default", "db"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.PutSecret(c, "default", "db", []byte("again"), true); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}
