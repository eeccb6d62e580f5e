package backbone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestStartsOnASmallDisk: the embedded server starts on a disk smaller than
// its streams' byte limits (nats-server's default store limit is 75% of
// the free space at start, which refuses such streams).
func TestStartsOnASmallDisk(t *testing.T) {
	dir := smallDisk(t, "16m")
	ctx := context.Background()
	b, err := Open(ctx, Config{Dir: filepath.Join(dir, "js")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "BIG", Subjects: []string{"big"}, MaxBytes: 1 << 30}); err != nil {
		t.Fatalf("a stream of 1 GiB on a 16 MiB disk: %v", err)
	}
}

// A single server cannot keep 3 replicas: asked to, Open says so after
// its wait instead of letting each stream fail on its own.
func TestReplicasNeedACluster(t *testing.T) {
	defer func(w time.Duration) { connectWait = w }(connectWait)
	connectWait = 2 * time.Second
	_, err := Open(context.Background(), Config{Dir: t.TempDir(), Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "cannot keep 3 replicas") {
		t.Fatalf("Open with 3 replicas on one server: %v", err)
	}
	b, err := Open(context.Background(), Config{Dir: t.TempDir(), Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// An external server that does not answer is retried, then refused
// naming it.
func TestExternalNotAnswering(t *testing.T) {
	defer func(w time.Duration) { connectWait = w }(connectWait)
	connectWait = time.Second
	began := time.Now()
	_, err := Open(context.Background(), Config{URL: "nats://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || time.Since(began) < connectWait {
		t.Fatalf("an external NATS that refuses: %v after %s", err, time.Since(began))
	}
}
