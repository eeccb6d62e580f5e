package kube

import (
	"context"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// API is the part of the Kubernetes API nimbus uses, through client-go's
// REST client over a scheme of only the groups it needs. Not client-go's
// clientset: that links every API group's types and clients, which grew
// every nimbus process (the in-container watchdog included) by megabytes
// of memory at start (TestBinaryLinksNoHeavyClient keeps them out).
type API struct {
	apps, core, discovery, authz rest.Interface
}

var scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, discoveryv1.AddToScheme,
		authorizationv1.AddToScheme, autoscalingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

// NewAPI makes the REST clients of cfg's cluster.
func NewAPI(cfg *rest.Config) (*API, error) {
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	client := func(gv schema.GroupVersion) (rest.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion, c.APIPath, c.NegotiatedSerializer = &gv, "/apis", codecs
		if gv.Group == "" {
			c.APIPath = "/api"
		}
		if c.UserAgent == "" {
			c.UserAgent = "nimbus"
		}
		if c.QPS == 0 {
			// client-go's default (5/s, bursts of 10) would queue
			// concurrent cold starts behind one another.
			c.QPS, c.Burst = 50, 100
		}
		return rest.RESTClientFor(c)
	}
	a := &API{}
	for _, x := range []struct {
		gv   schema.GroupVersion
		into *rest.Interface
	}{{appsv1.SchemeGroupVersion, &a.apps}, {corev1.SchemeGroupVersion, &a.core},
		{discoveryv1.SchemeGroupVersion, &a.discovery}, {authorizationv1.SchemeGroupVersion, &a.authz}} {
		c, err := client(x.gv)
		if err != nil {
			return nil, fmt.Errorf("kube: a client for %s: %w", x.gv, err)
		}
		*x.into = c
	}
	return a, nil
}

func (a *API) createDeployment(ctx context.Context, d *appsv1.Deployment) error {
	return a.apps.Post().Namespace(d.Namespace).Resource("deployments").Body(d).Do(ctx).Error()
}

func (a *API) getDeployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := a.apps.Get().Namespace(ns).Resource("deployments").Name(name).Do(ctx).Into(&d)
	return &d, err
}

func (a *API) updateDeployment(ctx context.Context, d *appsv1.Deployment) error {
	return a.apps.Put().Namespace(d.Namespace).Resource("deployments").Name(d.Name).Body(d).Do(ctx).Error()
}

func (a *API) deleteDeployment(ctx context.Context, ns, name string, uid types.UID) error {
	fg := metav1.DeletePropagationForeground
	return a.apps.Delete().Namespace(ns).Resource("deployments").Name(name).
		Body(&metav1.DeleteOptions{PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &uid}}).Do(ctx).Error()
}

func (a *API) getScale(ctx context.Context, ns, name string) (*autoscalingv1.Scale, error) {
	var s autoscalingv1.Scale
	err := a.apps.Get().Namespace(ns).Resource("deployments").Name(name).SubResource("scale").Do(ctx).Into(&s)
	return &s, err
}

func (a *API) updateScale(ctx context.Context, ns, name string, s *autoscalingv1.Scale) error {
	return a.apps.Put().Namespace(ns).Resource("deployments").Name(name).SubResource("scale").Body(s).Do(ctx).Error()
}

func (a *API) createService(ctx context.Context, s *corev1.Service) error {
	return a.core.Post().Namespace(s.Namespace).Resource("services").Body(s).Do(ctx).Error()
}

func (a *API) getService(ctx context.Context, ns, name string) (*corev1.Service, error) {
	var s corev1.Service
	err := a.core.Get().Namespace(ns).Resource("services").Name(name).Do(ctx).Into(&s)
	return &s, err
}

func (a *API) deleteService(ctx context.Context, ns, name string, uid types.UID) error {
	return a.core.Delete().Namespace(ns).Resource("services").Name(name).
		Body(&metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}).Do(ctx).Error()
}

func (a *API) getSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := a.core.Get().Namespace(ns).Resource("secrets").Name(name).Do(ctx).Into(&s)
	return &s, err
}

func (a *API) createSecret(ctx context.Context, s *corev1.Secret) error {
	return a.core.Post().Namespace(s.Namespace).Resource("secrets").Body(s).Do(ctx).Error()
}

func (a *API) updateSecret(ctx context.Context, s *corev1.Secret) error {
	return a.core.Put().Namespace(s.Namespace).Resource("secrets").Name(s.Name).Body(s).Do(ctx).Error()
}

func (a *API) deleteSecret(ctx context.Context, ns, name string, uid types.UID) error {
	return a.core.Delete().Namespace(ns).Resource("secrets").Name(name).
		Body(&metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}).Do(ctx).Error()
}

func (a *API) patchPod(ctx context.Context, ns, name string, patch []byte) error {
	return a.core.Patch(types.StrategicMergePatchType).Namespace(ns).Resource("pods").Name(name).Body(patch).Do(ctx).Error()
}

func (a *API) deletePod(ctx context.Context, ns, name string, grace int64) error {
	return a.core.Delete().Namespace(ns).Resource("pods").Name(name).Body(&metav1.DeleteOptions{GracePeriodSeconds: &grace}).Do(ctx).Error()
}

var parameterCodec = runtime.NewParameterCodec(scheme)

// podLogs follows the function container's output of a pod from since,
// each line prefixed with its time (RFC 3339).
func (a *API) podLogs(ctx context.Context, ns, pod string, since time.Time) (io.ReadCloser, error) {
	opts := &corev1.PodLogOptions{Container: "function", Follow: true, Timestamps: true, SinceTime: &metav1.Time{Time: since}}
	return a.core.Get().Namespace(ns).Resource("pods").Name(pod).SubResource("log").VersionedParams(opts, parameterCodec).Stream(ctx)
}

func (a *API) accessReview(ctx context.Context, attrs authorizationv1.ResourceAttributes) (bool, error) {
	var out authorizationv1.SelfSubjectAccessReview
	err := a.authz.Post().Resource("selfsubjectaccessreviews").
		Body(&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}).
		Do(ctx).Into(&out)
	return out.Status.Allowed, err
}

// informer watches one resource of the functions namespace, only what
// nimbus labelled, indexed by function key.
func informer(c rest.Interface, resource, ns string, obj runtime.Object) cache.SharedIndexInformer {
	lw := cache.NewFilteredListWatchFromClient(c, resource, ns, func(o *metav1.ListOptions) { o.LabelSelector = LabelFunction })
	return cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{byFunction: func(obj any) ([]string, error) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		l := m.GetLabels()
		if l[LabelFunction] == "" || l[LabelNamespace] == "" {
			return nil, nil
		}
		return []string{l[LabelNamespace] + "/" + l[LabelFunction]}, nil
	}})
}

// byFunction indexes objects by the key of the function they belong to.
const byFunction = "function"
