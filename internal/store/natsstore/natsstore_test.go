package natsstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"nimbus/internal/backbone"
	"nimbus/internal/function"
	"nimbus/internal/store"
	"nimbus/internal/store/natsstore"
	"nimbus/internal/store/storetest"
)

func open(t *testing.T, dir string) (*natsstore.Store, *backbone.Backbone) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bb, err := backbone.Open(ctx, backbone.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{})
	if err != nil {
		bb.Close()
		t.Fatal(err)
	}
	return s, bb
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, bb := open(t, t.TempDir())
		t.Cleanup(bb.Close)
		return s
	})
}

// TestExternalURL runs the same suite through a TCP connection, the code path
// of --nats-url.
func TestExternalURL(t *testing.T) {
	ctx := context.Background()
	srvBB, err := backbone.Open(ctx, backbone.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srvBB.Close()
	url := srvBB.ClientURL()
	if url == "" {
		t.Fatal("embedded server with Listen has no client URL")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		bb, err := backbone.Open(ctx, backbone.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bb.Close)
		// One server for all subtests: give each its own state by purging
		// the streams' messages. (Deleting and at once recreating a stream
		// races the server's removal of its files.)
		purge(t, bb)
		s, err := natsstore.Open(ctx, bb.Conn, bb.JS, natsstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func purge(t *testing.T, bb *backbone.Backbone) {
	ctx := context.Background()
	for _, name := range []string{"KV_nimbus_functions", "OBJ_nimbus_packages", "NIMBUS_LOGS", "KV_nimbus_secrets"} {
		st, err := bb.JS.Stream(ctx, name)
		if err != nil {
			continue // not created yet
		}
		if err := st.Purge(ctx); err != nil {
			t.Fatalf("purge %s: %v", name, err)
		}
	}
}

// TestSurvivesRestart: what was stored before the server stopped is there after.
func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, bb := open(t, dir)
	f := function.Function{Name: "kept", Command: []string{"./x"}, Package: "sha256:" + strings.Repeat("a", 64)}.WithDefaults()
	r, err := s.Create(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.PutPackage(ctx, stringsReader("package bytes"))
	if err != nil {
		t.Fatal(err)
	}
	bb.Close()

	s2, bb2 := open(t, dir)
	defer bb2.Close()
	got, err := s2.Get(ctx, "default", "kept")
	if err != nil || got.Revision != r.Revision {
		t.Fatalf("function lost across restart: %+v %v", got, err)
	}
	if _, err := s2.StatPackage(ctx, info.Digest); err != nil {
		t.Fatalf("package lost across restart: %v", err)
	}
}
