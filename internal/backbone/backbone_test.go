package backbone

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

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
