// Package kubetest gives tests a real Kubernetes cluster: the one the
// project's harness runs (test/k8s/cluster.sh, state in Dir), or
// $KUBECONFIG's; namespaces of their own in it; and images built here and
// imported into the node's containerd (no registry is reachable).
package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"nimbus/internal/images"
	"nimbus/internal/ociimage"
)

// Dir is where the harness keeps its state: $NIMBUS_K8S_DIR, or
// nimbus-k8s in the temp dir (as cluster.sh).
func Dir() string {
	if d := os.Getenv("NIMBUS_K8S_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "nimbus-k8s")
}

// Kubeconfig is the cluster's kubeconfig file: $KUBECONFIG, else the
// harness's.
func Kubeconfig() string {
	if k := os.Getenv("KUBECONFIG"); k != "" {
		return k
	}
	return filepath.Join(Dir(), "kubeconfig")
}

// need skips (or, under CI, fails) a test that lacks what it needs.
func need(t testing.TB, what string) {
	t.Helper()
	missing(t, what+": start one with `test/k8s/cluster.sh build && test/k8s/cluster.sh up` (as root; NIMBUS_K8S_DIR sets where)")
}

// missing skips a test, saying msg, or fails it in CI (where everything
// the tests need is made).
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Cluster returns the cluster's config, or skips when none answers.
func Cluster(t testing.TB) *rest.Config {
	t.Helper()
	kc := Kubeconfig()
	if _, err := os.Stat(kc); err != nil {
		need(t, "no Kubernetes cluster (no kubeconfig at "+kc+")")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("the kubeconfig %s: %v", kc, err)
	}
	c, err := coreClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Get().AbsPath("/readyz").Do(ctx).Error(); err != nil {
		need(t, "the Kubernetes cluster of "+kc+" does not answer ("+err.Error()+")")
	}
	return cfg
}

func coreClient(cfg *rest.Config) (*rest.RESTClient, error) {
	s := k8sruntime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{Version: "v1"}
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	return rest.RESTClientFor(c)
}

// Namespace makes a namespace for the test, deleted when it ends.
func Namespace(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	name := fmt.Sprintf("nimbus-test-%d", time.Now().UnixNano()%1e9)
	if err := CreateNamespace(cfg, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteNamespace(cfg, name) })
	return name
}

// CreateNamespace makes a namespace.
func CreateNamespace(cfg *rest.Config, name string) error {
	c, err := coreClient(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Post().Resource("namespaces").Body(ns).Do(ctx).Error(); err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// DeleteNamespace deletes a namespace and what is in it, without waiting.
func DeleteNamespace(cfg *rest.Config, name string) error {
	c, err := coreClient(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	grace := int64(0)
	return c.Delete().Resource("namespaces").Name(name).Body(&metav1.DeleteOptions{GracePeriodSeconds: &grace}).Do(ctx).Error()
}

// File is one file of an image: its path in the image and the local file.
type File = ociimage.File

// Image builds a single-layer image FROM scratch of files, with
// entrypoint, imports it into the node's containerd and returns its
// reference: name, tagged with the layer's digest (a tag that is not
// "latest", so that Kubernetes does not try to pull it).
func Image(t testing.TB, name string, entrypoint []string, files ...File) string {
	t.Helper()
	needImport(t)
	ref, err := ImportImage(name, entrypoint, files...)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// needImport skips (or, in CI, fails) a test when images cannot be
// imported into the node.
func needImport(t testing.TB) {
	t.Helper()
	sock := filepath.Join(Dir(), "containerd", "containerd.sock")
	if _, err := os.Stat(sock); err != nil {
		need(t, "no node containerd at "+sock)
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		need(t, "no ctr (Debian's containerd package) on PATH")
	}
}

// TestfnImage is drivertest's testfn behind nimbus-watchdog (the watchdog
// alone), FROM scratch, entrypoint /nimbus watchdog /testfn (a spec's
// command is testfn's arguments): the image the kube tests run, built
// from this module and imported once per test binary.
func TestfnImage(t testing.TB) string {
	t.Helper()
	testfnOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nimbus-kube-image-")
		if err != nil {
			testfnErr = err
			return
		}
		defer os.RemoveAll(dir)
		for out, pkg := range map[string]string{"nimbus": "nimbus/cmd/nimbus-watchdog", "testfn": "nimbus/internal/driver/drivertest/testfn"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				testfnErr = fmt.Errorf("building %s: %v\n%s", pkg, err, b)
				return
			}
		}
		testfnRef = Image(t, "localhost/nimbus-testfn", []string{"/nimbus", "watchdog", "/testfn"},
			File{Path: "/nimbus", From: filepath.Join(dir, "nimbus")}, File{Path: "/testfn", From: filepath.Join(dir, "testfn")})
	})
	if testfnErr != nil {
		t.Fatal(testfnErr)
	}
	if testfnRef == "" {
		t.Fatal("the test image was not built")
	}
	return testfnRef
}

var (
	testfnOnce sync.Once
	testfnRef  string
	testfnErr  error
)

// RuntimeImage is nimbus's runtime image (what `go run ./deploy/images -image runtime`
// builds: packages run in it), FROM scratch, built from this module and
// imported once per test binary.
func RuntimeImage(t testing.TB) string {
	t.Helper()
	needImport(t)
	runtimeOnce.Do(func() { runtimeRef, runtimeErr = importRuntime("test", nil) })
	if runtimeErr != nil {
		t.Fatal(runtimeErr)
	}
	return runtimeRef
}

// DebianRuntimeImage is the runtime image's Debian variant (python3 among
// its programs), built on the root filesystem test/k8s/cluster.sh
// runtime-base makes, and imported once per test binary.
func DebianRuntimeImage(t testing.TB) string {
	t.Helper()
	needImport(t)
	base := filepath.Join(Dir(), "runtime-base.tar.gz")
	if _, err := os.Stat(base); err != nil {
		missing(t, "no Debian root filesystem at "+base+": make it with `test/k8s/cluster.sh runtime-base` (as root, with debootstrap)")
	}
	debianOnce.Do(func() {
		b, err := os.ReadFile(base)
		if err != nil {
			debianErr = err
			return
		}
		debianRef, debianErr = importRuntime("debian", b)
	})
	if debianErr != nil {
		t.Fatal(debianErr)
	}
	return debianRef
}

// importRuntime builds the runtime image on base (nil: FROM scratch),
// tagged kind and a digest of what it holds, and imports it.
func importRuntime(kind string, base []byte) (string, error) {
	dir, err := os.MkdirTemp("", "nimbus-runtime-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	wd, err := images.Build(dir, images.WatchdogPackage)
	if err != nil {
		return "", err
	}
	w, err := os.ReadFile(wd)
	if err != nil {
		return "", err
	}
	ref := "localhost/nimbus-runtime:" + kind + "-" + ociimage.Digest(append(append([]byte(nil), base...), w...))[:12]
	var archive bytes.Buffer
	if err := images.Runtime(&archive, ref, wd, base); err != nil {
		return "", err
	}
	return ref, importArchive(ref, archive.Bytes())
}

var (
	runtimeOnce, debianOnce sync.Once
	runtimeRef, debianRef   string
	runtimeErr, debianErr   error
)

// NimbusImage and NATSImage are the images deploy/kubernetes runs (the
// static nimbus binary; nats-server built from the module nimbus embeds),
// built FROM scratch and imported once per test binary.
func NimbusImage(t testing.TB) string {
	return binaryImage(t, images.NimbusPackage, "localhost/nimbus", "/nimbus")
}

// NATSImage: see NimbusImage.
func NATSImage(t testing.TB) string {
	return binaryImage(t, images.NATSPackage, "localhost/nats-server", "/nats-server")
}

func binaryImage(t testing.TB, pkg, name, path string) string {
	t.Helper()
	needImport(t)
	binMu.Lock()
	defer binMu.Unlock()
	if ref, ok := binRefs[pkg]; ok {
		return ref
	}
	dir, err := os.MkdirTemp("", "nimbus-image-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := images.Build(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	ref := name + ":test-" + ociimage.Digest(b)[:12]
	var archive bytes.Buffer
	if err := images.Single(&archive, ref, bin, path); err != nil {
		t.Fatal(err)
	}
	if err := importArchive(ref, archive.Bytes()); err != nil {
		t.Fatal(err)
	}
	binRefs[pkg] = ref
	return ref
}

var (
	binMu   sync.Mutex
	binRefs = map[string]string{}
)

// Kubectl is the harness's kubectl (built with the cluster), else the one
// on PATH; it skips (fails in CI) when there is none.
func Kubectl(t testing.TB) string {
	t.Helper()
	if p := filepath.Join(Dir(), "bin", "kubectl"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p
	}
	need(t, "no kubectl (the harness builds one into "+filepath.Join(Dir(), "bin")+")")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// ImportImage is Image for programs: an error where Image skips or fails.
func ImportImage(name string, entrypoint []string, files ...File) (string, error) {
	layer, err := ociimage.Layer(files...)
	if err != nil {
		return "", err
	}
	ref := name + ":" + ociimage.Digest(layer)[:12]
	var archive bytes.Buffer
	if err := ociimage.Write(&archive, ociimage.Image{Ref: ref, Layers: [][]byte{layer}, Config: ociimage.Config{Entrypoint: entrypoint}}); err != nil {
		return "", err
	}
	return ref, importArchive(ref, archive.Bytes())
}

// importArchive imports an OCI archive into the node's containerd.
func importArchive(ref string, archive []byte) error {
	sock := filepath.Join(Dir(), "containerd", "containerd.sock")
	f, err := os.CreateTemp("", "nimbus-image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(archive); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if out, err := exec.Command("ctr", "-a", sock, "-n", "k8s.io", "images", "import", f.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("importing %s into containerd at %s: %v\n%s", ref, sock, err, out)
	}
	return nil
}

// NodeIP is the address of the cluster's (first) node, which its pods
// reach: where a test serves what pods must fetch from this machine.
func NodeIP(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	var nodes corev1.NodeList
	if code := Get(t, cfg, "/api/v1/nodes", &nodes); code != 200 || len(nodes.Items) == 0 {
		t.Fatalf("listing the nodes: %d, %d nodes", code, len(nodes.Items))
	}
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	t.Fatalf("node %s has no InternalIP", nodes.Items[0].Name)
	return ""
}

// Get reads an API path (e.g. /apis/apps/v1/namespaces/NS/deployments/NAME)
// as JSON into out; its HTTP status, 0 if the request failed.
func Get(t testing.TB, cfg *rest.Config, path string, out any) int {
	t.Helper()
	c, err := coreClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var status int
	b, err := c.Get().AbsPath(path).Do(ctx).StatusCode(&status).Raw()
	if err == nil && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return status
}

// Limited returns the config of the harness's user "limited", who may do
// nothing but what a test grants it (the cluster authorizes with RBAC);
// skips when the harness made none.
func Limited(t testing.TB) *rest.Config {
	t.Helper()
	kc := filepath.Join(Dir(), "kubeconfig-limited")
	if _, err := os.Stat(kc); err != nil {
		need(t, "no kubeconfig of a user without rights at "+kc)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("the kubeconfig %s: %v", kc, err)
	}
	return cfg
}

// Create posts obj (marshalled to JSON) to an API path, as the cluster's
// admin.
func Create(t testing.TB, cfg *rest.Config, path string, obj any) {
	t.Helper()
	CreateInto(t, cfg, path, obj, nil)
}

// CreateInto is Create, decoding the answer (the object made) into out
// unless it is nil.
func CreateInto(t testing.TB, cfg *rest.Config, path string, obj, out any) {
	t.Helper()
	c, err := coreClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := c.Post().AbsPath(path).SetHeader("Content-Type", "application/json").Body(b).Do(ctx).Raw()
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: the answer: %v", path, err)
		}
	}
}
