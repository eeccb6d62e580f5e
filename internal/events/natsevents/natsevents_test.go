package natsevents_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// TestSpacesWithDotsAndOldKeys: a space may hold dots and upper case
// (team.a, My_Space); keys written in the earlier form (SPACE.KIND.ID, when
// spaces were DNS labels) are read and rewritten, and the values survive
// the rewrite in this store's snapshot and in one opened afterwards.
func TestSpacesWithDotsAndOldKeys(t *testing.T) {
	ctx := context.Background()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	kv, err := bb.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "nimbus_events"})
	if err != nil {
		t.Fatal(err)
	}
	old := `{"space":"legacy","functionId":"f","type":"nimbus","provider":{"function":"f"}}`
	if _, err := kv.Put(ctx, "legacy.functions."+base64.RawURLEncoding.EncodeToString([]byte("f")), []byte(old)); err != nil {
		t.Fatal(err)
	}
	s, err := natsevents.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, space := range []string{"team.a", "My_Space"} {
		v := []byte(`{"space":"` + space + `","functionId":"g","type":"nimbus","provider":{"function":"g"}}`)
		if err := s.Create(ctx, space, events.KindFunctions, "g", v); err != nil {
			t.Fatal(err)
		}
	}
	// The watch delivers the writes (and the rewrite) shortly.
	for _, k := range []string{events.Key("legacy", "f"), events.Key("team.a", "g"), events.Key("My_Space", "g")} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, ok := s.Snapshot().Functions[k]; ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q missing from the snapshot: %v", k, s.Snapshot().Functions)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := kv.Get(ctx, "legacy.functions."+base64.RawURLEncoding.EncodeToString([]byte("f"))); err == nil {
		t.Fatal("the key of the earlier form was not rewritten")
	}
	again, err := natsevents.Open(ctx, bb.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n := len(again.Snapshot().Functions); n != 3 {
		t.Fatalf("a store opened after the rewrite sees %d functions, want 3", n)
	}
}
