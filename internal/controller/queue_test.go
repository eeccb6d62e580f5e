package controller_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"nimbus/internal/controller"
	"nimbus/internal/function"
	"nimbus/internal/store"
)

// fakeWatch is a Watcher whose events the test sends.
type fakeWatch struct {
	events  chan store.Event
	initial chan struct{}
}

func newFakeWatch() *fakeWatch {
	return &fakeWatch{events: make(chan store.Event, 16), initial: make(chan struct{})}
}

func (f *fakeWatch) Watch(ctx context.Context) (<-chan store.Event, <-chan struct{}, error) {
	return f.events, f.initial, nil
}

func put(name string, rev uint64) store.Event {
	return store.Event{Type: store.EventPut, Record: store.Record{Function: fn(name), Revision: rev}}
}

func del(name string) store.Event {
	return store.Event{Type: store.EventDelete, Record: store.Record{Function: function.Function{Namespace: "default", Name: name}}}
}

// scripted is a Target whose Apply fails a given number of times per
// function and whose Remove can be held.
type scripted struct {
	mu       sync.Mutex
	failures map[string]int
	tries    map[string][]time.Time
	applied  map[string]uint64
	hold     map[string]chan struct{}
	removing map[string]bool
}

func newScripted() *scripted {
	return &scripted{failures: map[string]int{}, tries: map[string][]time.Time{}, applied: map[string]uint64{},
		hold: map[string]chan struct{}{}, removing: map[string]bool{}}
}

func (s *scripted) Apply(rec store.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := rec.Function.Key()
	s.tries[k] = append(s.tries[k], time.Now())
	if s.failures[k] > 0 {
		s.failures[k]--
		return errors.New("driver said no")
	}
	if s.removing[k] {
		panic("applied while its removal was in progress")
	}
	s.applied[k] = rec.Revision
	return nil
}

func (s *scripted) Remove(ns, name string) {
	k := function.Key(ns, name)
	s.mu.Lock()
	h := s.hold[k]
	s.removing[k] = true
	s.mu.Unlock()
	if h != nil {
		<-h
	}
	s.mu.Lock()
	delete(s.applied, k)
	s.removing[k] = false
	s.mu.Unlock()
}

func (s *scripted) get(k string) (uint64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[k], len(s.tries[k])
}

func run(t *testing.T, w *fakeWatch, target controller.Target, log *bytes.Buffer) func() {
	ctx, cancel := context.WithCancel(context.Background())
	c := &controller.Controller{Store: w, Target: target, Logger: slog.New(slog.NewTextHandler(log, nil))}
	synced := make(chan struct{})
	done := make(chan struct{})
	go func() { c.Run(ctx, synced); close(done) }()
	close(w.initial)
	<-synced
	return func() { cancel(); <-done }
}

// TestRetriesFailedApply: a failed apply is retried with backoff (100ms,
// then 200ms), each failure logged, until it succeeds; a newer state for
// the function replaces the one being retried.
func TestRetriesFailedApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, target, log := newFakeWatch(), newScripted(), &bytes.Buffer{}
		target.failures["default/a"] = 2
		stop := run(t, w, target, log)
		defer stop()
		began := time.Now()
		w.events <- put("a", 1)
		time.Sleep(50 * time.Millisecond)
		if rev, tries := target.get("default/a"); rev != 0 || tries != 1 {
			t.Fatalf("after the first failure: rev %d, %d tries", rev, tries)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		rev, tries := target.get("default/a")
		if rev != 1 || tries != 3 {
			t.Fatalf("want revision 1 applied on the third try, got rev %d after %d tries", rev, tries)
		}
		target.mu.Lock()
		at := target.tries["default/a"]
		target.mu.Unlock()
		if d1, d2 := at[1].Sub(began), at[2].Sub(at[1]); d1 != 100*time.Millisecond || d2 != 200*time.Millisecond {
			t.Fatalf("retries after %s and %s, want 100ms and 200ms", d1, d2)
		}
		if n := strings.Count(log.String(), "applying a function failed; retrying"); n != 2 {
			t.Fatalf("want 2 failures logged, got %d:\n%s", n, log)
		}

		// A newer state replaces a failing one at once.
		target.failures["default/b"] = 100
		w.events <- put("b", 5)
		time.Sleep(time.Minute)
		target.mu.Lock()
		target.failures["default/b"] = 0
		target.mu.Unlock()
		w.events <- put("b", 6)
		synctest.Wait()
		if rev, _ := target.get("default/b"); rev != 6 {
			t.Fatalf("the newer revision was not applied at once: %d", rev)
		}
	})
}

// TestFunctionsApplyIndependently: while one function's delete waits for
// its instances to stop, another function is deployed at once; a change
// to the function being deleted waits for the delete, then applies.
func TestFunctionsApplyIndependently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, target, log := newFakeWatch(), newScripted(), &bytes.Buffer{}
		release := make(chan struct{})
		target.hold["default/slow"] = release
		stop := run(t, w, target, log)
		defer stop()
		w.events <- put("slow", 1)
		synctest.Wait()
		w.events <- del("slow")
		synctest.Wait()            // the delete is under way: its Remove waits
		w.events <- put("slow", 3) // a redeploy of the one being deleted
		w.events <- put("quick", 2)
		synctest.Wait()
		if rev, _ := target.get("default/quick"); rev != 2 {
			t.Fatal("a deploy waited for another function's delete")
		}
		if _, tries := target.get("default/slow"); tries != 1 {
			t.Fatal("the redeploy was applied while its function's delete was in progress")
		}
		time.Sleep(9 * time.Second) // the instances take 9s to stop
		close(release)
		synctest.Wait()
		if rev, _ := target.get("default/slow"); rev != 3 {
			t.Fatalf("the redeploy after the delete: rev %d", rev)
		}
	})
}

// TestUnreadableSpecLogged: an entry the store cannot decode is logged with
// the function's name, and the function keeps its last applied state.
func TestUnreadableSpecLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, target, log := newFakeWatch(), newScripted(), &bytes.Buffer{}
		stop := run(t, w, target, log)
		defer stop()
		w.events <- put("a", 1)
		bad := put("a", 2)
		bad.Err = errors.New("decode default.a: invalid character")
		w.events <- bad
		synctest.Wait()
		if rev, _ := target.get("default/a"); rev != 1 {
			t.Fatalf("want revision 1 kept, got %d", rev)
		}
		if !strings.Contains(log.String(), "cannot be read") || !strings.Contains(log.String(), "default/a") {
			t.Fatalf("not logged:\n%s", log)
		}
	})
}
