package natsevents_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"nimbus/internal/backbone"
	"nimbus/internal/events"
	"nimbus/internal/events/natsevents"
)

// TestTwoGateways: a write is in the writer's snapshot when it returns, and
// reaches another gateway's snapshot through the watch; so does a delete;
// a store opened later loads what is there; create and update keep their
// compare-and-set meaning.
func TestTwoGateways(t *testing.T) {
	ctx := context.Background()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	a, err := natsevents.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := natsevents.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	fn := []byte(`{"space":"default","functionId":"f.1","type":"nimbus","provider":{"function":"f"}}`)
	if err := a.Create(ctx, "default", events.KindFunctions, "f.1", fn); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Snapshot().Functions[events.Key("default", "f.1")]; !ok {
		t.Fatal("a write is not in the writer's snapshot when it returns")
	}
	waitFor(t, "the other gateway to see the write", func() bool {
		f, ok := b.Snapshot().Functions[events.Key("default", "f.1")]
		return ok && f.Provider.Function == "f"
	})
	if err := b.Create(ctx, "default", events.KindFunctions, "f.1", fn); !errors.Is(err, events.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := b.Update(ctx, "default", events.KindFunctions, "nope", fn); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("update of a missing one: %v", err)
	}
	c, err := natsevents.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.Snapshot().Functions[events.Key("default", "f.1")]; !ok {
		t.Fatal("a store opened later did not load what was there")
	}
	if err := b.Delete(ctx, "default", events.KindFunctions, "f.1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delete to reach the first gateway", func() bool {
		_, ok := a.Snapshot().Functions[events.Key("default", "f.1")]
		return !ok
	})
	if err := a.Delete(ctx, "default", events.KindFunctions, "f.1"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("delete of a deleted one: %v", err)
	}
	// Re-created after the delete: seen again everywhere.
	if err := a.Create(ctx, "default", events.KindFunctions, "f.1", fn); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-create to reach the other gateway", func() bool {
		_, ok := b.Snapshot().Functions[events.Key("default", "f.1")]
		return ok
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
