package kube

import (
	"context"
	"fmt"
	"os"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is the cluster to run functions on: a kubeconfig file's current
// context, or, with none given and inCluster asked (--provider kube), the
// in-cluster config of the pod nimbus runs in; nil (no kube runtime)
// otherwise: a nimbus that merely runs in a pod does not turn kube on.
// where says which, for messages.
func Config(kubeconfig string, inCluster bool) (cfg *rest.Config, where string, err error) {
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, "", fmt.Errorf("kube: the kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, "kubeconfig " + kubeconfig + " (" + cfg.Host + ")", nil
	}
	if !inCluster {
		return nil, "", nil
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, "", fmt.Errorf("kube: no cluster: give --kubeconfig FILE, or run nimbus in a pod")
	}
	cfg, err = rest.InClusterConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kube: the in-cluster config: %w", err)
	}
	return cfg, "in-cluster (" + cfg.Host + ")", nil
}

// Permission is one verb on one resource the provider needs in the
// functions namespace. Role (deploy/kubernetes) grants exactly these.
type Permission struct {
	Group, Resource, Subresource string
	Verbs                        []string
}

// Permissions are what the kube provider does in the functions namespace.
var Permissions = []Permission{
	{"apps", "deployments", "", []string{"get", "list", "watch", "create", "update", "delete"}},
	{"apps", "deployments", "scale", []string{"get", "update"}},
	{"", "services", "", []string{"get", "create", "delete"}},
	{"", "secrets", "", []string{"get", "create", "update", "delete"}},
	{"", "pods", "", []string{"get", "list", "watch", "patch", "delete"}},
	{"", "pods", "log", []string{"get"}},
	{"discovery.k8s.io", "endpointslices", "", []string{"get", "list", "watch"}},
}

// CheckAccess asks the cluster whether the credentials may do all that
// Permissions lists in namespace ns; the error names each verb and
// resource missing.
func CheckAccess(ctx context.Context, a *API, ns string) error {
	var missing []string
	for _, p := range Permissions {
		for _, verb := range p.Verbs {
			ok, err := a.accessReview(ctx, authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource})
			if err != nil {
				return fmt.Errorf("asking the cluster what nimbus may do: %w", err)
			}
			if !ok {
				res := p.Resource
				if p.Subresource != "" {
					res += "/" + p.Subresource
				}
				if p.Group != "" {
					res += "." + p.Group
				}
				missing = append(missing, verb+" "+res)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the credentials may not %s in namespace %q: grant them (deploy/kubernetes/rbac.yaml has the Role nimbus needs)", strings.Join(missing, ", "), ns)
	}
	return nil
}
