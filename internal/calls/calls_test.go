package calls

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestIndexReplacesAndBounds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x := NewIndex(3, time.Hour)
	x.Add([]Record{
		{CallID: "a", Function: "f", Namespace: "default", State: Queued, Updated: now},
		{CallID: "b", Function: "g", Namespace: "default", Updated: now.Add(time.Second)},
	}, now)
	x.Add([]Record{{CallID: "a", Function: "f", Namespace: "default", State: Done, Updated: now.Add(2 * time.Second)}}, now)
	if r, _ := x.Get("a"); r.State != Done {
		t.Fatalf("a later record must replace: %+v", r)
	}
	// An older record arriving late does not undo a newer one.
	x.Add([]Record{{CallID: "a", State: Queued, Updated: now}}, now)
	if r, _ := x.Get("a"); r.State != Done {
		t.Fatalf("an older record replaced a newer one: %+v", r)
	}
	if l := x.List("", "", 10); len(l) != 2 || l[0].CallID != "a" || l[1].CallID != "b" {
		t.Fatalf("most recently updated first: %+v", l)
	}
	if l := x.List("default", "g", 10); len(l) != 1 || l[0].CallID != "b" {
		t.Fatalf("by function: %+v", l)
	}
	x.Add([]Record{{CallID: "c", Updated: now.Add(3 * time.Second)}, {CallID: "d", Updated: now.Add(4 * time.Second)}}, now)
	if _, ok := x.Get("b"); ok || x.Len() != 3 {
		t.Fatalf("count bound: the oldest (b) must go; len %d", x.Len())
	}
	x.Add(nil, now.Add(time.Hour+3500*time.Millisecond))
	if x.Len() != 1 {
		t.Fatalf("age bound: only d is under an hour old; len %d", x.Len())
	}
}

type flakySink struct {
	mu    sync.Mutex
	fail  bool
	got   []Record
	calls int
}

func (s *flakySink) Append(_ context.Context, b []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail {
		return errors.New("backbone down")
	}
	s.got = append(s.got, b...)
	return nil
}

func (s *flakySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// TestRecorderKeepsThenDrops: records the sink refuses are kept for the next
// flush, up to MaxPending; beyond that they are dropped and counted.
func TestRecorderKeepsThenDrops(t *testing.T) {
	sink := &flakySink{fail: true}
	r := NewRecorder(sink, RecorderOptions{FlushEvery: 5 * time.Millisecond, MaxPending: 10})
	for i := range 15 {
		r.Record(Record{CallID: fmt.Sprint(i)})
	}
	time.Sleep(30 * time.Millisecond)
	if r.Dropped() != 5 {
		t.Fatalf("dropped %d, want 5", r.Dropped())
	}
	sink.mu.Lock()
	sink.fail = false
	sink.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for sink.count() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r.Record(Record{CallID: "last"})
	r.Close(context.Background())
	if n := sink.count(); n != 11 {
		t.Fatalf("stored %d records, want the 10 kept and the one flushed on close", n)
	}
	if sink.got[0].Updated.IsZero() {
		t.Fatal("Record must stamp Updated")
	}
}

// TestRecordThen: what waits on a record runs only once the record is
// stored, after failed flushes too; a record that has to be dropped (the
// buffer is full) lets what waits on it run rather than wait for ever.
func TestRecordThen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &flakySink{fail: true}
		r := NewRecorder(sink, RecorderOptions{FlushEvery: 10 * time.Millisecond, MaxPending: 4})
		defer r.Close(context.Background())
		var mu sync.Mutex
		ran := map[string]bool{}
		mark := func(id string) func() { return func() { mu.Lock(); ran[id] = true; mu.Unlock() } }
		seen := func() map[string]bool {
			mu.Lock()
			defer mu.Unlock()
			return maps.Clone(ran)
		}
		r.Record(Record{CallID: "plain"})
		r.RecordThen(Record{CallID: "a"}, mark("a"))
		r.RecordThen(Record{CallID: "b"}, mark("b"))
		r.RecordThen(Record{CallID: "c"}, mark("c"))
		time.Sleep(55 * time.Millisecond) // several failed flushes (off the 10ms ticks)
		if got := seen(); len(got) != 0 {
			t.Fatalf("ran before the records were stored: %v", got)
		}
		r.RecordThen(Record{CallID: "d"}, mark("d")) // the buffer is full: dropped
		if got := seen(); !got["d"] || len(got) != 1 {
			t.Fatalf("a dropped record's waiter must run at once: %v", got)
		}
		sink.mu.Lock()
		sink.fail = false
		sink.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		if got := seen(); !got["a"] || !got["b"] || !got["c"] || sink.count() != 4 {
			t.Fatalf("after the sink came back: %v, %d stored", got, sink.count())
		}
	})
}
