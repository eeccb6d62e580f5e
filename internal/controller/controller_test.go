package controller_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/backbone"
	"nimbus/internal/controller"
	"nimbus/internal/function"
	"nimbus/internal/store"
	"nimbus/internal/store/natsstore"
)

// recorder is a Target that remembers what it was told. The store is real.
type recorder struct {
	mu      sync.Mutex
	applied map[string]uint64
	removed []string
}

func (r *recorder) Apply(rec store.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied[rec.Function.Key()] = rec.Revision
	return nil
}

func (r *recorder) Remove(ns, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.applied, function.Key(ns, name))
	r.removed = append(r.removed, function.Key(ns, name))
}

func (r *recorder) snapshot() (map[string]uint64, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]uint64{}
	for k, v := range r.applied {
		m[k] = v
	}
	return m, strings.Join(r.removed, ",")
}

func fn(name string) function.Function {
	return function.Function{Name: name, Command: []string{"./x"}, Package: "sha256:" + strings.Repeat("a", 64)}.WithDefaults()
}

func TestAppliesStateThenChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	st, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := st.Create(ctx, fn("a"))
	b, _ := st.Create(ctx, fn("b"))
	rec := &recorder{applied: map[string]uint64{}}
	synced := make(chan struct{})
	done := make(chan struct{})
	go func() { (&controller.Controller{Store: st, Target: rec}).Run(ctx, synced); close(done) }()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("never synced")
	}
	// Synced means the existing functions are already applied.
	if got, _ := rec.snapshot(); got["default/a"] != a.Revision || got["default/b"] != b.Revision {
		t.Fatalf("after sync: %v", got)
	}
	a2, _ := st.Update(ctx, fn("a"), a.Revision)
	st.Delete(ctx, "default", "b", 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, removed := rec.snapshot()
		if got["default/a"] == a2.Revision && removed == "default/b" && len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes not applied: %v removed=%s", got, removed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
