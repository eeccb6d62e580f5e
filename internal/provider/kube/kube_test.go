package kube_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/provider/kube"
	"nimbus/internal/provider/kube/kubetest"
	"nimbus/internal/provider/providertest"
)

var (
	imageOnce sync.Once
	imageRef  string
)

// testImage is drivertest's testfn behind nimbus's watchdog (the small
// build, nimbus-watchdog), FROM scratch, as the Docker driver's conformance
// image.
func testImage(t *testing.T) string {
	imageOnce.Do(func() {
		dir := t.TempDir()
		for pkg, out := range map[string]string{"nimbus/cmd/nimbus-watchdog": "nimbus", "nimbus/internal/driver/drivertest/testfn": "testfn"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("building %s: %v\n%s", pkg, err, b)
			}
		}
		imageRef = kubetest.Image(t, "localhost/nimbus-testfn", []string{"/nimbus", "watchdog"},
			kubetest.File{Path: "/nimbus", From: filepath.Join(dir, "nimbus")}, kubetest.File{Path: "/testfn", From: filepath.Join(dir, "testfn")})
	})
	if imageRef == "" {
		t.Fatal("the test image was not built")
	}
	return imageRef
}

func TestConformance(t *testing.T) {
	cfg := kubetest.Cluster(t)
	ns := kubetest.Namespace(t, cfg)
	image := testImage(t)
	api, err := kube.NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	providertest.Run(t, providertest.Fixture{
		New: func(t *testing.T, watch provider.Watcher, drain provider.Drainer) provider.Provider {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := kube.New(ctx, kube.Options{API: api, Namespace: ns, Watch: watch, Drain: drain})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close(context.Background()) })
			return p
		},
		Function: func(args ...string) function.Function {
			return function.Function{Runtime: function.RuntimeKube, Image: image, Command: append([]string{"/testfn"}, args...)}
		},
		ExternalRetry: true,
	})
}
