package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/internal/function"
)

// TestManifestScaleTarget: nimbus.yaml's scale block carries the
// autoscaler's settings, and a target that cannot be met is refused with
// the field named.
func TestManifestScaleTarget(t *testing.T) {
	dir := t.TempDir()
	write := func(scale string) {
		os.WriteFile(filepath.Join(dir, ManifestFile), []byte("name: f\ncommand: ./f\nscale:\n"+scale), 0o644)
	}
	write("  type: rps\n  target: 5\n  targetUtilization: 0.9\n  stableWindow: 20s\n  scaleDownDelay: 1m\n  panicThreshold: 3\n")
	_, fn, err := readManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := fn.Scale
	if s.Type != function.ScaleRPS || s.Target == nil || *s.Target != 5 || s.TargetUtilization != 0.9 ||
		time.Duration(s.StableWindow) != 20*time.Second || time.Duration(s.ScaleDownDelay) != time.Minute || s.PanicThreshold != 3 {
		t.Fatalf("scale read as %+v", s)
	}
	write("  target: 0\n")
	if _, _, err := readManifest(dir); err == nil || !strings.Contains(err.Error(), "scale.target") {
		t.Fatalf("target 0: %v", err)
	}
	write("  type: memory\n")
	if _, _, err := readManifest(dir); err == nil || !strings.Contains(err.Error(), "scale.type") {
		t.Fatalf("unknown type: %v", err)
	}
}
