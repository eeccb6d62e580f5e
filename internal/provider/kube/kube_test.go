package kube_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/provider/kube"
	"nimbus/internal/provider/kube/kubetest"
	"nimbus/internal/provider/providertest"
)

// testImage runs testfn as its entrypoint's program: a function's command
// is testfn's arguments.
func testImage(t *testing.T) string { return kubetest.TestfnImage(t) }

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
			return function.Function{Runtime: function.RuntimeKube, Image: image, Command: args}
		},
		ExternalRetry: true,
	})
}

// TestSecrets: a function's secrets are a Secret of the functions
// namespace, mounted where OpenFaaS mounts them, readable by the
// function; new pods read new values; a function that drops its secrets,
// or is removed, takes the Secret with it.
func TestSecrets(t *testing.T) {
	cfg := kubetest.Cluster(t)
	ns := kubetest.Namespace(t, cfg)
	image := testImage(t)
	api, err := kube.NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	values := map[string]string{"db": "s3cr3t-one"}
	states := make(chan provider.State, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := kube.New(ctx, kube.Options{API: api, Namespace: ns,
		Watch: func(_, _ string, s provider.State) { states <- s },
		Drain: func(context.Context, string, string, string) {},
		SecretValue: func(_ context.Context, _, name string) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			v, ok := values[name]
			if !ok {
				return nil, fmt.Errorf("no secret %q", name)
			}
			return []byte(v), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	fn := function.Function{Name: "sec", Runtime: function.RuntimeKube, Image: image, Secrets: []string{"db"}, ReadOnlyRootFilesystem: true}.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	// ready waits for n ready replicas of revision rev and returns them.
	ready := func(rev uint64, n int) []provider.Endpoint {
		t.Helper()
		deadline := time.After(90 * time.Second)
		for {
			select {
			case s := <-states:
				var eps []provider.Endpoint
				for _, e := range s.Ready {
					if e.Revision == rev {
						eps = append(eps, e)
					}
				}
				if len(eps) >= n {
					return eps
				}
			case <-deadline:
				t.Fatalf("no %d ready replicas of revision %d", n, rev)
			}
		}
	}
	secretOf := func(ep provider.Endpoint) string {
		t.Helper()
		resp, err := http.Get("http://" + ep.Addr + "/secret?name=db")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	p.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 1})
	eps := ready(1, 1)
	if got := secretOf(eps[0]); got != "s3cr3t-one" {
		t.Fatalf("the pod reads %q at /var/openfaas/secrets/db", got)
	}
	secretPath := "/api/v1/namespaces/" + ns + "/secrets/" + kube.SecretName(fn.Namespace, fn.Name)
	var sec corev1.Secret
	if code := kubetest.Get(t, cfg, secretPath, &sec); code != 200 || sec.Labels[kube.LabelFunction] != "sec" {
		t.Fatalf("the Secret: %d %v", code, sec.Labels)
	}

	// A new value: the replicas started after it read it.
	mu.Lock()
	values["db"] = "s3cr3t-two"
	mu.Unlock()
	p.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 2})
	var fresh provider.Endpoint
	for _, ep := range ready(1, 2) {
		if ep.ID != eps[0].ID {
			fresh = ep
		}
	}
	if got := secretOf(fresh); got != "s3cr3t-two" {
		t.Fatalf("a replica started after the change reads %q", got)
	}

	// Without secrets: the next revision drops the Secret.
	plain := fn
	plain.Secrets = nil
	p.Ensure(provider.Target{Function: plain, Revision: 2, Replicas: 1})
	ready(2, 1)
	if code := kubetest.Get(t, cfg, secretPath, nil); code != 404 {
		t.Fatalf("the Secret of a function without secrets: %d", code)
	}
	p.Ensure(provider.Target{Function: fn, Revision: 3, Replicas: 1})
	ready(3, 1)
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	p.Remove(rctx, fn.Namespace, fn.Name)
	if code := kubetest.Get(t, cfg, secretPath, nil); code != 404 {
		t.Fatalf("the Secret of a removed function: %d", code)
	}
}

// TestReplicasAnotherGatewayAdded: replicas above this provider's target
// that it did not ask to remove (another gateway scaled up for a call at
// zero) stay for a while, then go; a target it lowers itself is met at
// once.
func TestReplicasAnotherGatewayAdded(t *testing.T) {
	cfg := kubetest.Cluster(t)
	ns := kubetest.Namespace(t, cfg)
	api, err := kube.NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := kube.New(ctx, kube.Options{API: api, Namespace: ns, Watch: func(string, string, provider.State) {},
		Drain: func(context.Context, string, string, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	fn := function.Function{Name: "shared", Runtime: function.RuntimeKube, Image: testImage(t)}.WithDefaults()
	p.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 0})
	path := "/apis/apps/v1/namespaces/" + ns + "/deployments/shared"
	replicas := func() int32 {
		var d appsv1.Deployment
		if kubetest.Get(t, cfg, path, &d) != 200 || d.Spec.Replicas == nil {
			return -1
		}
		return *d.Spec.Replicas
	}
	deadline := time.Now().Add(30 * time.Second)
	for replicas() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("no Deployment at 0")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Another gateway's provider (a second Provider on the same
	// namespace) scales it up, grow-only.
	q, err := kube.New(ctx, kube.Options{API: api, Namespace: ns, Watch: func(string, string, provider.State) {},
		Drain: func(context.Context, string, string, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(context.Background())
	q.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 1, GrowOnly: true})
	began := time.Now()
	for replicas() != 1 {
		if time.Since(began) > 30*time.Second {
			t.Fatal("the other gateway's scale-up did not happen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// This provider, at 0, leaves it for a while (the decider has not
	// seen the load yet); once the other gateway no longer asks for it
	// (its activation's hold ended), this one removes it.
	time.Sleep(3 * time.Second)
	if n := replicas(); n != 1 {
		t.Fatalf("3 s after another gateway scaled up, the Deployment is at %d: this provider undid it", n)
	}
	q.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 0, GrowOnly: true})
	for replicas() != 0 {
		if time.Since(began) > 60*time.Second {
			t.Fatal("the replica no one asks for stayed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A target it lowers itself is met without the wait (once the
	// scale-down to 0 has ended: its pods gone).
	for {
		var pods corev1.PodList
		if kubetest.Get(t, cfg, "/api/v1/namespaces/"+ns+"/pods", &pods) == 200 && len(pods.Items) == 0 {
			break
		}
		if time.Since(began) > 120*time.Second {
			t.Fatal("the pods of the scale-down to 0 did not go")
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 2})
	q.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 0, GrowOnly: true})
	for replicas() != 2 {
		if time.Since(began) > 180*time.Second {
			t.Fatal("no scale-up to 2")
		}
		time.Sleep(100 * time.Millisecond)
	}
	lowered := time.Now()
	p.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 1})
	for replicas() != 1 {
		if time.Since(lowered) > 120*time.Second { // a scale-down drains first; slow under -race and load
			t.Fatal("the lowered target was not met")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a lowered target met in %s", time.Since(lowered).Round(time.Millisecond))
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	p.Remove(rctx, fn.Namespace, fn.Name)
}
