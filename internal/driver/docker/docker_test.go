package docker

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"nimbus/internal/driver"
	"nimbus/internal/driver/drivertest"
	"nimbus/internal/function"
	"nimbus/internal/provider/providertest"
)

// TestImage is the image the conformance suite runs: nimbus's watchdog as
// the entrypoint in front of drivertest's testfn, FROM scratch.
const TestImage = "nimbus-drivertest:local"

// LambdaImage runs drivertest's lambdafn, an aws-lambda-go handler built as
// bootstrap, as a Lambda container image does: FROM scratch, the bootstrap
// in the runtime directory as the entrypoint.
const LambdaImage = "nimbus-drivertest-lambda:local"

var (
	imageOnce sync.Once
	imageErr  error
)

// newTestDriver connects to the engine, or skips the test when none answers.
func newTestDriver(t *testing.T, owner string) *Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := New(ctx, Options{Owner: owner, Network: "nimbus-test"})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must provide a Docker engine: %v", err)
		}
		t.Skipf("no Docker engine: %v (start dockerd, or set DOCKER_HOST, to run this test)", err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	imageOnce.Do(func() { imageErr = buildTestImage(d) })
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return d
}

func buildTestImage(d *Driver) error {
	dir, err := os.MkdirTemp("", "nimbus-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for out, pkg := range map[string]string{"nimbus": "nimbus/cmd/nimbus", "testfn": "nimbus/internal/driver/drivertest/testfn",
		"bootstrap": "nimbus/internal/driver/drivertest/lambdafn"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return &buildError{pkg, string(b), err}
		}
	}
	df := "FROM scratch\nCOPY nimbus /nimbus\nCOPY testfn /testfn\nENTRYPOINT [\"/nimbus\", \"watchdog\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.BuildImage(ctx, dir, TestImage); err != nil {
		return err
	}
	df = "FROM scratch\nCOPY bootstrap " + LambdaRuntimeDir + "/bootstrap\nENTRYPOINT [\"" + LambdaRuntimeDir + "/bootstrap\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	return d.BuildImage(ctx, dir, LambdaImage)
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "build " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

// fixture runs testfn in containers of a driver of its own.
func fixture(t *testing.T, prefix string) drivertest.Fixture {
	return drivertest.Fixture{
		Driver: newTestDriver(t, prefix+"-"+time.Now().Format("150405.000")),
		Function: func(protocol string, args ...string) function.Function {
			return function.Function{Runtime: function.RuntimeDocker, Image: TestImage, Protocol: protocol,
				Command: append([]string{"/testfn"}, args...)}
		},
		Lambda: func(*testing.T) (function.Function, func(context.Context, string) (io.ReadCloser, error)) {
			// The command is the image's CMD, which names the handler
			// (_HANDLER), as in Lambda's base images.
			return function.Function{Runtime: function.RuntimeDocker, Image: LambdaImage, Command: []string{"bootstrap"}}, nil
		},
	}
}

func TestConformance(t *testing.T) { drivertest.Run(t, fixture(t, "conformance")) }

func spec(name string, mod func(*function.Function)) driver.Spec {
	fn := function.Function{Name: name, Runtime: function.RuntimeDocker, Image: TestImage, Command: []string{"/testfn"}}
	if mod != nil {
		mod(&fn)
	}
	return driver.Spec{Function: fn.WithDefaults(), Revision: 1}
}

// TestContainerSettings: labels, limits, user and read-only root are set on
// the container the engine runs.
func TestContainerSettings(t *testing.T) {
	d := newTestDriver(t, "settings")
	inst, err := d.Start(context.Background(), spec("limited", func(f *function.Function) {
		f.Limits = function.Resources{Memory: "64Mi", CPU: "500m"}
		f.ReadOnlyRootFilesystem = true
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	info, err := d.cli.ContainerInspect(context.Background(), inst.(*instance).cid, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := info.Container
	h := c.HostConfig
	if c.Config.Labels[LabelManaged] != "true" || c.Config.Labels[LabelOwner] != "settings" || c.Config.Labels[LabelFunction] != "limited" {
		t.Errorf("labels: %v", c.Config.Labels)
	}
	if h.Memory != 64<<20 || h.NanoCPUs != 500_000_000 || h.PidsLimit == nil || *h.PidsLimit != 512 {
		t.Errorf("limits: memory %d cpu %d pids %v", h.Memory, h.NanoCPUs, h.PidsLimit)
	}
	if !h.ReadonlyRootfs || h.Tmpfs["/tmp"] == "" || c.Config.User != "65534:65534" {
		t.Errorf("readonly %v tmpfs %v user %q", h.ReadonlyRootfs, h.Tmpfs, c.Config.User)
	}
	if _, body, err := drivertest.Call(inst, "GET", "/whoami", ""); err != nil || body != "65534" {
		t.Errorf("function runs as uid %q (%v), want 65534", body, err)
	}
}

// TestReapRemovesLeftovers: containers of an earlier run of the same owner are
// removed; another owner's are left alone.
func TestReapRemovesLeftovers(t *testing.T) {
	old := newTestDriver(t, "reap-me")
	other := newTestDriver(t, "someone-else")
	left, err := old.Start(context.Background(), spec("leftover", nil))
	if err != nil {
		t.Fatal(err)
	}
	keep, err := other.Start(context.Background(), spec("kept", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Stop(context.Background())
	fresh := newTestDriver(t, "reap-me") // as after a restart of the same nimbus
	if err := fresh.Reap(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-left.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("leftover container not removed")
	}
	if _, err := fresh.cli.ContainerInspect(context.Background(), left.(*instance).cid, client.ContainerInspectOptions{}); err == nil {
		t.Fatal("leftover container still exists")
	}
	if code, _, err := drivertest.Call(keep, "GET", "/", ""); err != nil || code != 200 {
		t.Fatalf("another owner's container was touched: %d %v", code, err)
	}
}

func TestMissingImageFailsWithRegistryMessage(t *testing.T) {
	d := newTestDriver(t, "pull")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := d.Prepare(ctx, function.Function{Image: "nimbus-no-such-image-anywhere:v0"})
	if err == nil {
		t.Fatal("a pull of a missing image succeeded")
	}
	t.Logf("pull error: %v", err)
}

// TestProviderConformance runs the provider suite on containers.
func TestProviderConformance(t *testing.T) { providertest.RunLocal(t, fixture(t, "provider")) }
