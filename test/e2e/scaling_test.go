package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRollingDeployUnderLoad: new revisions deployed while requests run
// roll the instances over without a failed request, and scaling through the
// CLI keeps the running instances (no new revision).
func TestRollingDeployUnderLoad(t *testing.T) {
	n := start(t, dataDir(t))
	dir := copyExample(t, "hello-go")
	manifest := filepath.Join(dir, "nimbus.yaml")
	base, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	deploy := func(v int) {
		os.WriteFile(manifest, append(append([]byte(nil), base...), fmt.Sprintf("env: {V: \"%d\"}\n", v)...), 0o644)
		n.mustCLI("deploy", dir)
	}
	deploy(1)
	if code, body, _ := n.invoke("POST", "/function/hello-go", "x"); code != 200 {
		t.Fatalf("first call: %d %s", code, body)
	}
	before := describe(t, n, "hello-go")
	n.mustCLI("scale", "hello-go", "2")
	waitUntil(t, "two instances", 30*time.Second, func() bool { return describe(t, n, "hello-go").Scale.Ready == 2 })
	after := describe(t, n, "hello-go")
	if after.Revision != before.Revision {
		t.Fatalf("scaling made revision %d (was %d)", after.Revision, before.Revision)
	}

	// Eight callers, at most 20 s or 4000 calls each, while three new
	// revisions roll out.
	var ok, bad atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 8 {
		wg.Go(func() {
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; i < 4000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(n.URL+"/function/hello-go", "text/plain", strings.NewReader("load"))
				if err != nil {
					bad.Add(1)
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, b))
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		})
	}
	for v := 2; v <= 4; v++ {
		time.Sleep(300 * time.Millisecond)
		deploy(v)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d calls answered 200 through three rolling deploys", ok.Load())
	if bad.Load() != 0 {
		t.Fatalf("%d of %d calls failed during the rollouts; first: %v", bad.Load(), ok.Load()+bad.Load(), failures[:min(5, len(failures))])
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d calls ran: the load did not overlap the deploys", ok.Load())
	}
	// The count survived the revisions, and only the last one's instances remain.
	final := describe(t, n, "hello-go")
	waitUntil(t, "the old revisions' instances to stop", 30*time.Second, func() bool {
		d := describeFull(t, n, "hello-go")
		if len(d.Instances) != 2 {
			return false
		}
		for _, in := range d.Instances {
			if in.Revision != final.Revision {
				return false
			}
		}
		return true
	})
	if final.Scale.Desired != 2 {
		t.Fatalf("desired replicas after the rollouts: %d, want the 2 it was scaled to", final.Scale.Desired)
	}
}

// TestOpenFaaSThroughputScaling is the certifier's throughput test without
// Prometheus or AlertManager: 10 req/s to a function labelled
// com.openfaas.scale.type=rps, target=5 reaches 2 replicas, and returns to
// its minimum when the load stops.
func TestOpenFaaSThroughputScaling(t *testing.T) {
	need(t, "docker")
	buildOFImage(t)
	n := start(t, dataDir(t))
	pw := strings.TrimSpace(readFile(t, filepath.Join(n.dataDir, "admin-token")))
	labels := `{"com.openfaas.scale.type":"rps","com.openfaas.scale.target":"5","com.openfaas.scale.target-proportion":"1",` +
		`"com.openfaas.scale.min":"1","com.openfaas.scale.max":"4","nimbus.dev/scale.stable-window":"6s"}`
	if code, body := n.faas(t, "POST", "/system/functions", `{"service":"rps","image":"`+ofImage+`","labels":`+labels+`}`, pw); code != 202 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	replicas := func() (int, int) {
		_, body := n.faas(t, "GET", "/system/function/rps", "", pw)
		var st struct{ Replicas, AvailableReplicas int }
		json.Unmarshal([]byte(body), &st)
		return st.Replicas, st.AvailableReplicas
	}
	waitUntil(t, "the minimum replica", 60*time.Second, func() bool { _, a := replicas(); return a == 1 })

	// 10 requests a second, for at most 30 s, until 2 replicas are ready.
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 300; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Go(func() {
				resp, err := http.Post(n.URL+"/function/rps", "text/plain", strings.NewReader("x"))
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			})
		}
	})
	began, peak := time.Now(), 0
	reached := false
	for time.Since(began) < 30*time.Second {
		r, a := replicas()
		peak = max(peak, r)
		if a >= 2 {
			reached = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if !reached {
		t.Fatalf("10 req/s at a target of 5 never reached 2 replicas in 30 s (peak desired %d)", peak)
	}
	// Prometheus sees the same, under nimbus's and OpenFaaS's names.
	_, metrics, _ := n.invoke("GET", "/metrics", "")
	for _, want := range []string{
		`nimbus_function_desired_replicas{function="rps",namespace="default"}`,
		`nimbus_function_ready_replicas{function="rps",namespace="default"}`,
		`nimbus_autoscaler_panic_mode{function="rps",namespace="default"}`,
		`gateway_service_target_load{function_name="rps.default",scaling_type="rps"} 5`,
		`gateway_service_count{function_name="rps.default"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	t.Logf("2 replicas ready %s after the load began; %d calls, %d failed", time.Since(began).Round(100*time.Millisecond), sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed", failed.Load(), sent.Load())
	}
	if peak > 3 {
		t.Fatalf("10 req/s at 5 per replica asked for %d replicas", peak)
	}
	// Back to the minimum once the load has stopped (the stable window is 6 s).
	stopped := time.Now()
	waitUntil(t, "back to 1 replica", 60*time.Second, func() bool { r, a := replicas(); return r == 1 && a == 1 })
	t.Logf("back to 1 replica %s after the load stopped", time.Since(stopped).Round(100*time.Millisecond))
	if out := n.mustCLI("describe", "rps"); !strings.Contains(out, "rps 5 per replica") || !strings.Contains(out, "Decision:") {
		t.Fatalf("describe does not show the target and the decision:\n%s", out)
	}
}

type describedFunction struct {
	Revision uint64
	Scale    struct{ Desired, Ready int }
}

func describe(t *testing.T, n *nimbus, name string) describedFunction {
	return describeFull(t, n, name).Function
}

type described struct {
	Function  describedFunction
	Instances []struct{ Revision uint64 }
}

func describeFull(t *testing.T, n *nimbus, name string) described {
	t.Helper()
	var d described
	if err := json.Unmarshal([]byte(n.mustCLI("describe", name, "-o", "json")), &d); err != nil {
		t.Fatal(err)
	}
	return d
}
