package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"nimbus/internal/provider/kube/kubetest"
)

// deployment is what the test reads of a Deployment.
type deployment struct {
	Metadata struct {
		Labels      map[string]string
		Annotations map[string]string
	}
	Spec struct {
		Replicas *int
		Template struct {
			Spec struct {
				AutomountServiceAccountToken *bool
				Containers                   []struct {
					SecurityContext struct {
						RunAsNonRoot *bool
					}
				}
			}
		}
	}
	Status struct{ ReadyReplicas int }
}

// TestKubeOpenFaaS: with --provider kube, functions deployed through the
// OpenFaaS API (the requests faas-cli makes) run as Deployments: invoked
// through the gateway, scaled to zero and back, rolled to a new revision
// while called without a failure, deleted.
func TestKubeOpenFaaS(t *testing.T) {
	cfg := kubetest.Cluster(t)
	ns := kubetest.Namespace(t, cfg)
	image := kubetest.TestfnImage(t)
	data := dataDir(t)
	n := start(t, data, "--kubeconfig", kubetest.Kubeconfig(), "--kube-namespace", ns, "--provider", "kube")
	token := strings.TrimSpace(readFile(t, data+"/admin-token"))
	const ua = "faas-cli/dev"
	deployPath := "/apis/apps/v1/namespaces/" + ns + "/deployments/kf"

	// A secret, as faas-cli secret create makes it; the function mounts it
	// where OpenFaaS does.
	code, body, _ := n.fc(t, token, fcRequest{"POST", "/system/secrets", `{"name":"kf-key","value":"kube-secret"}`, ua, true})
	accepts(t, "secret create", code, body, 200, 201, 202)
	deploy := `{"service":"kf","image":"` + image + `","labels":{"team":"a","com.openfaas.scale.zero":"true","com.openfaas.scale.zero-duration":"2s"},"annotations":{},"envVars":{"V":"one"},"secrets":["kf-key"]}`
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/functions", deploy, ua, true})
	accepts(t, "deploy, PUT of a new function", code, body, 404)
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/functions", deploy, ua, true})
	accepts(t, "deploy, POST", code, body, 200, 202)
	// It may scale to zero (com.openfaas.scale.zero), so it starts at zero:
	// the first call brings a pod.
	code, body, _ = n.fc(t, token, fcRequest{method: "POST", path: "/function/kf", body: "ping"})
	if code != 200 || body != "ping" {
		t.Fatalf("invoke: %d %q", code, body)
	}
	// What the pod writes reaches nimbus logs.
	line := fmt.Sprintf("kube-log-%d", time.Now().UnixNano())
	if code, body, _ := n.fc(t, token, fcRequest{method: "POST", path: "/function/kf/log", body: line}); code != 200 {
		t.Fatalf("the logging call: %d %s", code, body)
	}
	waitUntil(t, "the pod's line in nimbus logs", 30*time.Second, func() bool {
		return strings.Contains(n.mustCLI("logs", "kf"), line)
	})
	if code, body, _ := n.fc(t, token, fcRequest{method: "GET", path: "/function/kf/secret?name=kf-key"}); code != 200 || body != "kube-secret" {
		t.Fatalf("the secret at /var/openfaas/secrets/kf-key: %d %q", code, body)
	}
	var d deployment
	if code := kubetest.Get(t, cfg, deployPath, &d); code != 200 {
		t.Fatalf("the function's Deployment: %d", code)
	}
	if d.Metadata.Labels["faas_function"] != "kf" || d.Metadata.Labels["team"] != "a" || d.Metadata.Labels["nimbus.dev/function"] != "kf" {
		t.Fatalf("the Deployment's labels: %v", d.Metadata.Labels)
	}
	pod := d.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken || pod.Containers[0].SecurityContext.RunAsNonRoot == nil {
		t.Fatalf("the pod template is not locked down: %+v", pod)
	}
	// Idle for its zero-duration, the Deployment goes to 0; a call brings a
	// pod back.
	waitUntil(t, "the Deployment at 0", 60*time.Second, func() bool {
		var d deployment
		return kubetest.Get(t, cfg, deployPath, &d) == 200 && d.Spec.Replicas != nil && *d.Spec.Replicas == 0 && d.Status.ReadyReplicas == 0
	})
	began := time.Now()
	code, body, _ = n.fc(t, token, fcRequest{method: "POST", path: "/function/kf", body: "cold"})
	if code != 200 || body != "cold" {
		t.Fatalf("invoke at zero: %d %q", code, body)
	}
	t.Logf("a call at zero replicas answered in %s", time.Since(began).Round(time.Millisecond))

	// A new revision under calls: none fails.
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/scale-function/kf", `{"serviceName":"kf","replicas":2}`, ua, true})
	accepts(t, "scale to 2", code, body, 200, 202)
	waitUntil(t, "2 ready pods", 60*time.Second, func() bool {
		var d deployment
		return kubetest.Get(t, cfg, deployPath, &d) == 200 && d.Status.ReadyReplicas == 2
	})
	var calls, failed atomic.Int64
	var lastFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 1 {
		wg.Go(func() {
			// Bounded, and paced (every 5 ms), so that the rest of the
			// suite, running beside it on the same CPUs, is not starved.
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				code, body, _ := n.fc(t, token, fcRequest{method: "POST", path: "/function/kf", body: "roll"})
				calls.Add(1)
				if code != 200 || body != "roll" {
					failed.Add(1)
					lastFailure.Store(body)
				}
			}
		})
	}
	update := strings.Replace(deploy, `"one"`, `"two"`, 1)
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/functions", update, ua, true})
	accepts(t, "deploy again (a rolling update)", code, body, 200, 202)
	waitUntil(t, "the new revision alone", 90*time.Second, func() bool {
		code, body, _ := n.fc(t, token, fcRequest{method: "GET", path: "/function/kf/env"})
		return code == 200 && strings.Contains(body, "V=two")
	})
	time.Sleep(5 * time.Second) // the old pods' preStop pause and exit, under calls
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d calls failed during the rollout; the last: %v", failed.Load(), calls.Load(), lastFailure.Load())
	}
	t.Logf("%d calls during the rollout, none failed", calls.Load())

	// Delete: the Deployment goes.
	code, body, _ = n.fc(t, token, fcRequest{"DELETE", "/system/functions", `{"functionName":"kf"}`, ua, true})
	accepts(t, "remove", code, body, 200, 202)
	waitUntil(t, "the Deployment gone", 60*time.Second, func() bool { return kubetest.Get(t, cfg, deployPath, nil) == 404 })
	if code := kubetest.Get(t, cfg, "/api/v1/namespaces/"+ns+"/secrets/kf-secrets", nil); code != 404 {
		t.Fatalf("the removed function's Secret: %d", code)
	}

	// The native CLI: a nimbus.yaml naming runtime kube deploys, runs,
	// says where it runs, and deletes.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte("name: kn\nruntime: kube\nimage: "+image+"\nscale:\n  min: 1\n"), 0o644)
	n.mustCLI("deploy", dir)
	code, body, _ = n.fc(t, token, fcRequest{method: "POST", path: "/function/kn", body: "native"})
	if code != 200 || body != "native" {
		t.Fatalf("a function deployed with the CLI: %d %q", code, body)
	}
	if out := n.mustCLI("describe", "kn"); !strings.Contains(out, "kube") {
		t.Fatalf("describe does not say the runtime:\n%s", out)
	}
	if code := kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/"+ns+"/deployments/kn", nil); code != 200 {
		t.Fatalf("the CLI's function has no Deployment: %d", code)
	}
	n.mustCLI("delete", "kn")
	waitUntil(t, "the CLI's function's Deployment gone", 60*time.Second, func() bool {
		return kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/"+ns+"/deployments/kn", nil) == 404
	})

	// An image the node does not have (no registry answers): callers get
	// a 503 that says why, from Kubernetes, not a wait until timeout.
	missing := `{"service":"nope","image":"localhost/nimbus-no-such-image:v1","labels":{},"annotations":{}}`
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/functions", missing, ua, true})
	accepts(t, "deploy of a missing image", code, body, 200, 202)
	began = time.Now()
	code, body, _ = n.fc(t, token, fcRequest{method: "POST", path: "/function/nope", body: "x"})
	if code != 503 || !strings.Contains(body, "ErrImagePull") && !strings.Contains(body, "ImagePullBackOff") {
		t.Fatalf("a call to a function whose image is missing: %d %s", code, body)
	}
	t.Logf("the missing image answered %d in %s: %s", code, time.Since(began).Round(time.Millisecond), body)
	out := n.mustCLI("describe", "nope")
	if !strings.Contains(out, "ErrImagePull") && !strings.Contains(out, "ImagePullBackOff") {
		t.Fatalf("describe does not say why the function does not start:\n%s", out)
	}
}

// TestKubePackages: with --provider kube, `nimbus deploy examples/hello-go`
// (a package, no image) runs unchanged in pods of nimbus's runtime image,
// which fetch the package from the nimbus API with its fetch token alone;
// a new package is a new revision; a stdio package runs too; a package
// function without --kube-api-url is refused at deploy, saying why.
func TestKubePackages(t *testing.T) {
	cfg := kubetest.Cluster(t)
	need(t, "go")
	ns := kubetest.Namespace(t, cfg)
	runtimeImage := kubetest.RuntimeImage(t)
	// The pods fetch packages from this nimbus: it serves on the node's
	// address, which they reach.
	addr := net.JoinHostPort(kubetest.NodeIP(t, cfg), strings.Split(freeAddr(t), ":")[1])
	data := dataDir(t)
	n := start(t, data, "--listen", addr, "--kubeconfig", kubetest.Kubeconfig(), "--kube-namespace", ns, "--provider", "kube",
		"--kube-api-url", "http://"+addr, "--kube-runtime-image", runtimeImage)

	dir := copyExample(t, "hello-go")
	n.mustCLI("deploy", dir)
	code, body, _ := n.invoke("POST", "/function/hello-go", "kube")
	if code != 200 || body != "Hello, kube!\n" {
		t.Fatalf("hello-go on kube: %d %q", code, body)
	}
	var d appsv1.Deployment
	if code := kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/"+ns+"/deployments/hello-go", &d); code != 200 {
		t.Fatalf("hello-go has no Deployment: %d", code)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != runtimeImage {
		t.Fatalf("the Deployment runs %q, want the runtime image %q", c.Image, runtimeImage)
	}
	token := strings.TrimSpace(readFile(t, data+"/admin-token"))
	for _, e := range c.Env {
		if strings.Contains(e.Value, token) {
			t.Fatalf("the pod's environment holds the admin token (%s)", e.Name)
		}
	}
	if out := n.mustCLI("describe", "hello-go"); !strings.Contains(out, "kube") {
		t.Fatalf("describe does not say the runtime:\n%s", out)
	}
	waitUntil(t, "the fetch in the pod's logs", 30*time.Second, func() bool {
		return strings.Contains(n.mustCLI("logs", "hello-go"), "fetched package")
	})

	// A new package: a new revision, rolled out.
	main := filepath.Join(dir, "main.go")
	src := strings.Replace(readFile(t, main), `"Hello, %s!\n"`, `"Hi again, %s!\n"`, 1)
	os.WriteFile(main, []byte(src), 0o644)
	n.mustCLI("deploy", dir)
	waitUntil(t, "the new package serving", 90*time.Second, func() bool {
		code, body, _ := n.invoke("POST", "/function/hello-go", "kube")
		return code == 200 && body == "Hi again, kube!\n"
	})

	// A stdio package, run by the watchdog per request. The runtime image
	// is FROM scratch, with no shell: the package brings a static program
	// (testfn, in its stdio mode).
	sdir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(sdir, "testfn"), "nimbus/internal/driver/drivertest/testfn")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testfn: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(sdir, "nimbus.yaml"), []byte("name: kstdio\nprotocol: stdio\ncommand: [./testfn, stdio]\n"), 0o644)
	n.mustCLI("deploy", sdir)
	if code, body, _ := n.invoke("POST", "/function/kstdio", "echoed"); code != 200 || body != "echoed" {
		t.Fatalf("a stdio package on kube: %d %q", code, body)
	}
	n.mustCLI("delete", "kstdio")
	n.mustCLI("delete", "hello-go")
	waitUntil(t, "hello-go's Deployment gone", 60*time.Second, func() bool {
		return kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/"+ns+"/deployments/hello-go", nil) == 404
	})
}

// TestKubePackagesNeedAPIURL: without --kube-api-url a pod would not know
// where to fetch a package: the deploy is refused, saying what to give.
func TestKubePackagesNeedAPIURL(t *testing.T) {
	cfg := kubetest.Cluster(t)
	ns := kubetest.Namespace(t, cfg)
	n := start(t, dataDir(t), "--kubeconfig", kubetest.Kubeconfig(), "--kube-namespace", ns, "--provider", "kube")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\ncat\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte("name: nourl\nprotocol: stdio\ncommand: [./run.sh]\n"), 0o644)
	_, errOut, code := n.cli("deploy", dir)
	if code == 0 || !strings.Contains(errOut, "--kube-api-url") {
		t.Fatalf("deploy without --kube-api-url: exit %d\n%s", code, errOut)
	}
	if code := kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/"+ns+"/deployments/nourl", nil); code != 404 {
		t.Fatalf("a refused deploy made a Deployment: %d", code)
	}
}

// TestKubePackagesDebian: on the runtime image's Debian variant,
// examples/hello-python (a package of Python source) runs unchanged on
// Kubernetes.
func TestKubePackagesDebian(t *testing.T) {
	cfg := kubetest.Cluster(t)
	image := kubetest.DebianRuntimeImage(t)
	ns := kubetest.Namespace(t, cfg)
	addr := net.JoinHostPort(kubetest.NodeIP(t, cfg), strings.Split(freeAddr(t), ":")[1])
	n := start(t, dataDir(t), "--listen", addr, "--kubeconfig", kubetest.Kubeconfig(), "--kube-namespace", ns, "--provider", "kube",
		"--kube-api-url", "http://"+addr, "--kube-runtime-image", image)
	n.mustCLI("deploy", copyExample(t, "hello-python"))
	code, body, _ := n.invoke("POST", "/function/hello-python", "kube")
	if code != 200 || body != "Hello from Python, kube!\n" {
		t.Fatalf("hello-python on kube: %d %q", code, body)
	}
	n.mustCLI("delete", "hello-python")
}
