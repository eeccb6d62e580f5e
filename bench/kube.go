package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"nimbus/internal/function"
	"nimbus/internal/provider/kube/kubetest"
)

// runKube measures the kube runtime on the cluster of the project's
// harness (test/k8s/cluster.sh, or $KUBECONFIG's): pod cold starts (a call
// to a function at zero replicas → its answer) and warm throughput at
// c=32 through nimbus against the same pod called directly, and prints
// them with their targets.
func runKube(coldRuns int, dur, warm time.Duration) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubetest.Kubeconfig())
	if err != nil {
		return fmt.Errorf("no cluster (%v): start one with test/k8s/cluster.sh build && test/k8s/cluster.sh up", err)
	}
	tmp, err := workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fnBin, _, nimbusBin, err := buildAll(tmp)
	if err != nil {
		return err
	}
	image, err := kubetest.ImportImage("localhost/nimbus-bench-fn", []string{"/fn"}, kubetest.File{Path: "/fn", From: fnBin})
	if err != nil {
		return err
	}
	ns := fmt.Sprintf("nimbus-bench-%d", time.Now().Unix())
	if err := kubetest.CreateNamespace(cfg, ns); err != nil {
		return err
	}
	defer kubetest.DeleteNamespace(cfg, ns)
	data := filepath.Join(tmp, "data")
	os.MkdirAll(data, 0o700)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	nb, err := startNimbusWith(nimbusBin, data, baseEnv(), "--kubeconfig", kubetest.Kubeconfig(), "--kube-namespace", ns, "--provider", "kube",
		"--nats-listen", natsAddr)
	if err != nil {
		return err
	}
	defer stopProc(nb.cmd)
	// A second gateway on the same NATS and cluster: how soon it routes a
	// function deployed through the first.
	dataB := filepath.Join(tmp, "data-b")
	os.MkdirAll(dataB, 0o700)
	nbB, err := startNimbusWith(nimbusBin, dataB, baseEnv(), "--kubeconfig", kubetest.Kubeconfig(), "--kube-namespace", ns, "--provider", "kube",
		"--nats-url", "nats://"+natsAddr)
	if err != nil {
		return err
	}
	defer stopProc(nbB.cmd)
	deploy := func(name string, mod func(*function.Function)) error {
		fn := function.Function{Name: name, Image: image, Env: map[string]string{"FN_ALL_INTERFACES": "1"}}
		mod(&fn)
		_, _, err := nb.client.Deploy(context.Background(), fn)
		return err
	}
	addr := strings.TrimPrefix(nb.url, "http://")

	// Cold starts: idle a second, the Deployment goes to zero; then one
	// call on a new connection.
	if err := deploy("kcold", func(f *function.Function) { f.Scale.IdleTimeout = function.Duration(time.Second) }); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "kube cold starts…")
	cold, err := series(coldRuns, func() (time.Duration, error) {
		if err := nb.waitInstances("kcold", 0, 90*time.Second); err != nil {
			return 0, err
		}
		time.Sleep(time.Second) // the pod's exit settles
		c := newRawClient(addr, "/function/kcold")
		defer func() {
			if c.c != nil {
				c.c.Close()
			}
		}()
		return c.call()
	})
	if err != nil {
		return err
	}

	// Warm: one pod, c=32, through nimbus and straight to the pod.
	if err := deploy("kwarm", func(f *function.Function) { f.Scale.Min, f.Scale.Max = 1, 1 }); err != nil {
		return err
	}
	if err := retry(90*time.Second, func() error { _, err := newRawClient(addr, "/function/kwarm").call(); return err }); err != nil {
		return err
	}
	list, err := nb.client.Instances(context.Background(), "", "kwarm")
	if err != nil || len(list) != 1 || list[0].Addr == "" {
		return fmt.Errorf("the warm function's pod: %v %+v", err, list)
	}
	fmt.Fprintln(os.Stderr, "kube warm load…")
	through := load(nb.url+"/function/kwarm", 32, warm, dur)
	direct := load("http://"+list[0].Addr+"/", 32, warm, dur)
	// Notice, last (its probes start pods, which would disturb the rest):
	// deploy through gateway A, then ask gateway B for the function until
	// it stops answering 404 (it routes it; the call then waits for a
	// pod, which is not measured: the probe gives up).
	fmt.Fprintln(os.Stderr, "kube: a second gateway noticing new functions…")
	probe := &http.Client{Timeout: 50 * time.Millisecond}
	var seq int
	notice, err := series(coldRuns, func() (time.Duration, error) {
		seq++
		name := fmt.Sprintf("knotice-%d", seq)
		began := time.Now()
		if err := deploy(name, func(f *function.Function) { f.Scale.IdleTimeout = function.Duration(time.Second) }); err != nil {
			return 0, err
		}
		for time.Since(began) < 30*time.Second {
			resp, err := probe.Get(nbB.url + "/function/" + name)
			if err != nil || resp.StatusCode != http.StatusNotFound {
				if err == nil {
					resp.Body.Close()
				}
				took := time.Since(began)
				err := nb.client.Delete(context.Background(), "", name)
				return took, err
			}
			resp.Body.Close()
			time.Sleep(2 * time.Millisecond)
		}
		return 0, fmt.Errorf("gateway B did not notice %s in 30 s", name)
	})
	if err != nil {
		return err
	}

	cs, ns2 := summarize(cold), summarize(notice)
	ratio := through.RPS / max(direct.RPS, 1)
	fmt.Printf("\nkube (%s, one node): cold start (call at zero replicas → answer), %d runs: p50 %.0f ms, p99 %.0f ms\n",
		kubeVersion(), coldRuns, float64(cs.P50)/1e6, float64(cs.P99)/1e6)
	fmt.Printf("2 gateways on one NATS: deploy through A → B routes the function, %d runs: p50 %.0f ms, p99 %.0f ms (A's deploy call included)\n",
		coldRuns, float64(ns2.P50)/1e6, float64(ns2.P99)/1e6)
	fmt.Printf("warm, one pod, c=32, %s: through nimbus %.0f req/s (p50 %s µs, %d errors), straight to the pod %.0f req/s (p50 %s µs, %d errors)\n",
		dur, through.RPS, us(through.P50), through.Errors, direct.RPS, us(direct.P50), direct.Errors)
	for _, tg := range []target{
		{"kube cold start p50", fmt.Sprintf("%.0f ms", float64(cs.P50)/1e6), "≤ 1.5 s", cs.P50 <= 1500*time.Millisecond},
		{"kube warm req/s through nimbus ÷ direct, c=32", fmt.Sprintf("%.2f", ratio), "≥ 0.25", ratio >= 0.25},
	} {
		fmt.Printf("%-48s %12s  target %-12s met %v\n", tg.What, tg.Value, tg.Goal, tg.Met)
	}
	return nil
}

// kubeVersion is the cluster's version, as kubectl of the harness says.
func kubeVersion() string {
	out, err := exec.Command(filepath.Join(kubetest.Dir(), "bin", "kubectl"), "--kubeconfig", kubetest.Kubeconfig(), "version", "-o", "json").Output()
	if err != nil {
		return "Kubernetes"
	}
	if i := strings.Index(string(out), `"serverVersion"`); i >= 0 {
		if j := strings.Index(string(out[i:]), `"gitVersion": "`); j >= 0 {
			v := string(out[i+j+len(`"gitVersion": "`):])
			return "Kubernetes " + v[:strings.IndexByte(v, '"')]
		}
	}
	return "Kubernetes"
}
