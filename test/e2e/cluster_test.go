package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// natsServer builds nats-server from the module nimbus embeds and runs it
// with JetStream on a loopback port, for tests of several gateways.
func natsServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Skipf("cannot build nats-server from the module cache: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "-js", "-sd", filepath.Join(dir, "js"), "-a", host, "-p", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Ready once it accepts connections (a nimbus started before gives up).
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "nats://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server does not accept connections on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type scaleView struct {
	Function struct {
		Scale struct {
			Desired, Local, Ready, Gateways int
			Gateway, DecidedBy              string
			Decider                         bool
		}
	}
}

func (n *nimbus) scaleOf(t *testing.T, name string) (v scaleView) {
	t.Helper()
	out, _, code := n.cli("describe", name, "-o", "json")
	if code == 0 {
		json.Unmarshal([]byte(out), &v)
	}
	return v
}

// TestGatewaysShareOneDecision: two nimbus on one NATS publish their load
// each second; exactly one decides, on the sum of both, and either reports
// the same desired count; when the decider is killed (-9) the other takes
// over within 5 s.
func TestGatewaysShareOneDecision(t *testing.T) {
	url := natsServer(t)
	a := start(t, dataDir(t), "--nats-url", url)
	b := start(t, dataDir(t), "--nats-url", url)
	dir := copyExample(t, "hello-go")
	manifest := filepath.Join(dir, "nimbus.yaml")
	base, _ := os.ReadFile(manifest)
	// One request at a time per instance, each taking 50 ms (the handler
	// reads its body slowly): load is concurrency the decider can count.
	os.WriteFile(manifest, []byte(strings.Replace(string(base), "maxConcurrency: 100", "maxConcurrency: 2", 1)+
		"\n# test\n"), 0o644)
	a.mustCLI("deploy", dir)
	gateways := map[string]*nimbus{}
	waitUntil(t, "both gateways to see the function", 30*time.Second, func() bool {
		va, vb := a.scaleOf(t, "hello-go"), b.scaleOf(t, "hello-go")
		if va.Function.Scale.Gateway == "" || vb.Function.Scale.Gateway == "" {
			return false
		}
		gateways[va.Function.Scale.Gateway], gateways[vb.Function.Scale.Gateway] = a, b
		return true
	})

	// Callers on both gateways, a few requests in flight at each.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed, ok atomic.Int64
	for _, n := range []*nimbus{a, b} {
		for range 3 {
			wg.Go(func() {
				client := &http.Client{Timeout: 10 * time.Second}
				for i := 0; i < 20000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := client.Post(n.URL+"/function/hello-go", "text/plain", slowBody(50*time.Millisecond))
					if err != nil && n.cmd.ProcessState != nil {
						return // its gateway was killed
					}
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					} else {
						ok.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				}
			})
		}
	}
	defer func() { close(stop); wg.Wait() }()

	// One decider; the same count on both, from the load of both.
	var decider string
	waitUntil(t, "one decision seen alike by both gateways", 30*time.Second, func() bool {
		va, vb := a.scaleOf(t, "hello-go").Function.Scale, b.scaleOf(t, "hello-go").Function.Scale
		if va.Decider == vb.Decider || va.Desired != vb.Desired || va.Desired < 2 || va.DecidedBy != vb.DecidedBy || va.Gateways != 2 {
			return false
		}
		decider = va.Gateway
		if vb.Decider {
			decider = vb.Gateway
		}
		t.Logf("desired %d on both (a runs %d, b runs %d), decided by %s", va.Desired, va.Local, vb.Local, va.DecidedBy)
		return true
	})

	// Kill the decider: the other decides within 5 s.
	dead, survivor := gateways[decider], a
	if dead == a {
		survivor = b
	}
	dead.cmd.Process.Signal(syscall.SIGKILL)
	<-dead.exited
	killed := time.Now()
	waitUntil(t, "the survivor to decide", 10*time.Second, func() bool {
		return survivor.scaleOf(t, "hello-go").Function.Scale.Decider
	})
	took := time.Since(killed)
	t.Logf("the survivor decides %s after the decider was killed", took.Round(10*time.Millisecond))
	if took > 5*time.Second+time.Second { // the lease's TTL and a tick, plus the CLI's own time
		t.Fatalf("takeover took %s", took)
	}
	// It now carries the load alone, and says so.
	waitUntil(t, "the survivor to count itself alone", 10*time.Second, func() bool {
		return survivor.scaleOf(t, "hello-go").Function.Scale.Gateways == 1
	})
	if ok.Load() == 0 {
		t.Fatal("no call succeeded")
	}
	t.Logf("%d calls answered, %d failed (those in flight at the killed gateway)", ok.Load(), failed.Load())
	// The killed gateway comes back (and removes what its kill left).
	dead.launch("--nats-url", url)
	waitUntil(t, "the restarted gateway to rejoin", 15*time.Second, func() bool {
		return survivor.scaleOf(t, "hello-go").Function.Scale.Gateways == 2
	})
}

// slowBody is a request body that takes d to arrive.
func slowBody(d time.Duration) *slowReader { return &slowReader{d: d} }

type slowReader struct {
	d    time.Duration
	done bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	time.Sleep(r.d)
	r.done = true
	p[0] = 'x'
	return 1, nil
}
