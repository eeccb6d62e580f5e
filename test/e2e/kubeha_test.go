package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"nimbus/internal/provider/kube/kubetest"
)

// The cluster has no DNS: the overlay pins the Services' cluster IPs
// (in the harness's service range) and names them in the arguments where
// the manifests name the Services.
const (
	haNATSIP   = "10.96.77.10"
	haNimbusIP = "10.96.77.12"
)

var haMemberIPs = []string{"10.96.77.13", "10.96.77.14", "10.96.77.15"}

// haOverlay writes a kustomize overlay of deploy/kubernetes for the test
// cluster: the images built here, the admin Secret, pinned Service IPs,
// emptyDir instead of volume claims (the node has no storage provisioner)
// and a short async redelivery.
func haOverlay(t *testing.T, token string, images map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(repoRoot(), "deploy", "kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n", base)
	b.WriteString("images:\n")
	for name, ref := range images {
		i := strings.LastIndexByte(ref, ':')
		fmt.Fprintf(&b, "  - {name: %q, newName: %q, newTag: %q}\n", name, ref[:i], ref[i+1:])
	}
	fmt.Fprintf(&b, `secretGenerator:
  - name: nimbus-admin
    namespace: nimbus
    literals: [token=%s]
    options: {disableNameSuffixHash: true}
patches:
`, token)
	pin := func(svc, ip string) {
		fmt.Fprintf(&b, "  - target: {kind: Service, name: %s}\n    patch: '[{\"op\": \"add\", \"path\": \"/spec/clusterIP\", \"value\": \"%s\"}]'\n", svc, ip)
	}
	pin("nats", haNATSIP)
	pin("nimbus", haNimbusIP)
	routes := []string{}
	for i, ip := range haMemberIPs {
		pin(fmt.Sprintf("nats-%d", i), ip)
		routes = append(routes, "nats://"+ip+":6222")
	}
	fmt.Fprintf(&b, `  - target: {kind: StatefulSet, name: nats}
    patch: |
      [{"op": "replace", "path": "/spec/template/spec/containers/0/args/7", "value": "--routes=%s"},
       {"op": "remove", "path": "/spec/volumeClaimTemplates"},
       {"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "data", "emptyDir": {}}]}]
  - target: {kind: Deployment, name: nimbus}
    patch: |
      [{"op": "replace", "path": "/spec/template/spec/containers/0/args/4", "value": "--nats-url=nats://%s:4222"},
       {"op": "replace", "path": "/spec/template/spec/containers/0/args/8", "value": "--kube-api-url=http://%s:8080"},
       {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--async-ack-wait=10s"}]
`, strings.Join(routes, ","), haNATSIP, haNimbusIP)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// kubectl runs the harness's kubectl on the test cluster.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubetest.Kubectl(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubetest.Kubeconfig())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kubectlOut is kubectl's output, whatever its exit.
func kubectlOut(t *testing.T, args ...string) string {
	cmd := exec.Command(kubetest.Kubectl(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubetest.Kubeconfig())
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestKubeHA: deploy/kubernetes on a real cluster — 3 nimbus replicas
// sharing a 3-member NATS JetStream cluster (R3), the admin token from a
// Secret, functions as Deployments — survives losing a nimbus pod and a
// NATS member under continuous async load: every call answered 202 is
// executed (the function reports it to a sink outside the cluster); none
// is dead-lettered, as the function neither fails nor goes. The ledger is
// logged.
func TestKubeHA(t *testing.T) {
	cfg := kubetest.Cluster(t)
	kubetest.Kubectl(t)
	imgs := map[string]string{
		"localhost/nimbus":      kubetest.NimbusImage(t),
		"localhost/nats-server": kubetest.NATSImage(t),
	}
	fnImage := kubetest.TestfnImage(t)
	// The manifests' own namespaces: a run before this one may have left them.
	for _, ns := range []string{"nimbus", "openfaas-fn"} {
		kubetest.DeleteNamespace(cfg, ns)
	}
	for _, ns := range []string{"nimbus", "openfaas-fn"} {
		waitUntil(t, "namespace "+ns+" gone", 120*time.Second, func() bool { return kubetest.Get(t, cfg, "/api/v1/namespaces/"+ns, nil) == 404 })
	}
	t.Cleanup(func() {
		for _, ns := range []string{"openfaas-fn", "nimbus"} {
			kubetest.DeleteNamespace(cfg, ns)
		}
	})
	raw := make([]byte, 32)
	rand.Read(raw)
	token := hex.EncodeToString(raw)
	kubectl(t, "apply", "-k", haOverlay(t, token, imgs))
	began := time.Now()
	waitUntil(t, "3 NATS members and 3 nimbus replicas ready", 180*time.Second, func() bool {
		var ss appsv1.StatefulSet
		var d appsv1.Deployment
		return kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/nimbus/statefulsets/nats", &ss) == 200 && ss.Status.ReadyReplicas == 3 &&
			kubetest.Get(t, cfg, "/apis/apps/v1/namespaces/nimbus/deployments/nimbus", &d) == 200 && d.Status.ReadyReplicas == 3
	})
	t.Logf("deploy/kubernetes ready in %s", time.Since(began).Round(time.Second))
	base := "http://" + haNimbusIP + ":8080"
	api := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Every replica takes the token of the Secret.
	var all corev1.PodList
	kubetest.Get(t, cfg, "/api/v1/namespaces/nimbus/pods", &all)
	var gateways []corev1.Pod
	for _, p := range all.Items {
		if p.Labels["app.kubernetes.io/name"] == "nimbus" && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			gateways = append(gateways, p)
		}
	}
	if len(gateways) != 3 {
		t.Fatalf("%d nimbus pods, want 3", len(gateways))
	}
	for _, p := range gateways {
		req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+"/v1/functions", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("replica %s with the Secret's token: %d", p.Name, resp.StatusCode)
		}
	}

	// The sink the function reports executions to, on the node's address.
	var mu sync.Mutex
	executed := map[string]int{}
	ln, err := net.Listen("tcp", net.JoinHostPort(kubetest.NodeIP(t, cfg), "0"))
	if err != nil {
		t.Fatal(err)
	}
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1024))
		id, _, _ := strings.Cut(string(b), " ")
		mu.Lock()
		executed[id]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go sink.Serve(ln)
	defer sink.Close()

	deploy := fmt.Sprintf(`{"service":"ledger","image":%q,"envVars":{"RECORD_URL":"http://%s/"},"labels":{"com.openfaas.scale.min":"2"}}`, fnImage, ln.Addr())
	if code, body := api("POST", "/system/functions", deploy); code != 200 && code != 202 {
		t.Fatalf("deploy through the OpenFaaS API: %d %s", code, body)
	}
	waitUntil(t, "the function answering", 120*time.Second, func() bool {
		code, _ := api("POST", "/function/ledger/record", "warm")
		return code == 200
	})

	// Each of the 3 gateways follows the function's pods; a line is kept
	// once.
	line := fmt.Sprintf("ha-log-%d", time.Now().UnixNano())
	if code, body := api("POST", "/function/ledger/log", line); code != 200 {
		t.Fatalf("the logging call: %d %s", code, body)
	}
	waitUntil(t, "the pod's line in the logs", 60*time.Second, func() bool {
		_, body := api("GET", "/v1/functions/ledger/logs", "")
		return strings.Contains(body, line)
	})
	time.Sleep(3 * time.Second) // the other gateways' copies, if any, arrive
	if _, body := api("GET", "/v1/functions/ledger/logs", ""); strings.Count(body, line) != 1 {
		t.Fatalf("a pod's line is in the logs %d times, want once:\n%s", strings.Count(body, line), body)
	}

	// Async load; mid-way a nimbus pod and a NATS member are deleted at
	// once, without grace.
	var accepted []string
	refused := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				id := fmt.Sprintf("ha-%d-%d", w, i)
				req, _ := http.NewRequest("POST", base+"/async-function/ledger/record?ms=50", strings.NewReader("x"))
				req.Header.Set("X-Call-Id", id)
				resp, err := client.Do(req)
				mu.Lock()
				switch {
				case err != nil:
					refused["error"]++
				case resp.StatusCode == 202:
					accepted = append(accepted, resp.Header.Get("X-Call-Id"))
				default:
					refused[resp.Status]++
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(6 * time.Second)
	victim := gateways[0].Name
	kubectl(t, "-n", "nimbus", "delete", "pod", victim, "nats-1", "--grace-period=0", "--force", "--wait=false")
	t.Logf("deleted nimbus pod %s and NATS member nats-1", victim)
	time.Sleep(14 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n < 100 {
		t.Fatalf("only %d calls were accepted: %v", n, refused)
	}
	var dead map[string]queueDead
	waitUntil(t, "every accepted call executed or dead-lettered", 180*time.Second, func() bool {
		dead = map[string]queueDead{}
		code, body := api("GET", "/v1/deadletters", "")
		if code != 200 {
			return false
		}
		var list struct{ DeadLetters []queueDead }
		if json.Unmarshal([]byte(body), &list) != nil {
			return false
		}
		for _, d := range list.DeadLetters {
			dead[d.CallID] = d
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range accepted {
			if executed[id] == 0 && dead[id].CallID == "" {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	ex, dups, dl := 0, 0, 0
	for _, id := range accepted {
		switch {
		case executed[id] > 0:
			ex++
			dups += executed[id] - 1
		case dead[id].CallID != "":
			dl++
		}
	}
	t.Logf("ledger: %d calls answered 202: %d executed (%d duplicate executions), %d dead-lettered, 0 lost; not accepted during the failover: %v",
		n, ex, dups, dl, refused)
	reasons := map[string]int{}
	for _, d := range dead {
		reasons[d.Error]++
	}
	for reason, n := range reasons {
		t.Logf("%d dead letters: %s", n, reason)
	}
	// The function was never deleted nor failing: a dead letter here is
	// nimbus losing track of it during the failover.
	if dl > 0 {
		t.Logf("gateways' logs:\n%s", kubectlOut(t, "-n", "nimbus", "logs", "-l", "app.kubernetes.io/name=nimbus", "--prefix", "--tail=200"))
		t.Fatalf("%d calls dead-lettered though their function was there and working: %v", dl, reasons)
	}
}

type queueDead struct {
	CallID   string `json:"callId"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
}
