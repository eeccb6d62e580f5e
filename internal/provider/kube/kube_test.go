package kube_test

import (
	"context"
	"testing"
	"time"

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
