package kube_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"nimbus/internal/function"
	"nimbus/internal/provider"
	"nimbus/internal/provider/kube"
	"nimbus/internal/provider/kube/kubetest"
)

// TestAccess: credentials without the rights nimbus needs fail the check
// that runs at start, naming each verb and resource; granted the Role
// deploy/kubernetes ships, the same credentials pass it and run a
// function.
func TestAccess(t *testing.T) {
	admin := kubetest.Cluster(t)
	limited := kubetest.Limited(t)
	ns := kubetest.Namespace(t, admin)
	api, err := kube.NewAPI(limited)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = kube.CheckAccess(ctx, api, ns)
	if err == nil {
		t.Fatal("a user without rights passed the check")
	}
	for _, want := range []string{"create deployments.apps", "update deployments/scale.apps", "watch endpointslices.discovery.k8s.io", "patch pods", ns} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}

	// Grant the Role, as deploy/kubernetes/rbac.yaml has it, to the user.
	b, err := os.ReadFile("../../../deploy/kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		meta := doc["metadata"].(map[string]any)
		switch doc["kind"] {
		case "Role":
			meta["namespace"] = ns
			kubetest.Create(t, admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/roles", doc)
		case "RoleBinding":
			meta["namespace"] = ns
			doc["subjects"] = []map[string]string{{"kind": "User", "name": "limited", "apiGroup": "rbac.authorization.k8s.io"}}
			kubetest.Create(t, admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/rolebindings", doc)
		}
	}
	// The apiserver's authorizer learns of the binding through its own
	// cache: a moment later under load.
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := kube.CheckAccess(ctx, api, ns)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("granted the Role, the check still fails after 30 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ready := make(chan provider.State, 16)
	p, err := kube.New(ctx, kube.Options{API: api, Namespace: ns, Watch: func(_, _ string, s provider.State) {
		select {
		case ready <- s:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	fn := function.Function{Name: "granted", Runtime: function.RuntimeKube, Image: testImage(t)}.WithDefaults()
	p.Ensure(provider.Target{Function: fn, Revision: 1, Replicas: 1})
	for {
		select {
		case s := <-ready:
			if s.ReadyOf(1) == 1 {
				p.Remove(ctx, fn.Namespace, fn.Name)
				return
			}
		case <-ctx.Done():
			st, _ := p.State(fn.Namespace, fn.Name)
			t.Fatalf("with the Role's rights, no replica became ready: %+v", st)
		}
	}
}
