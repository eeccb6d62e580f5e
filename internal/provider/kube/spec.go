package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"nimbus/internal/function"
)

// Labels and annotations nimbus puts on what it creates. faas_function is
// OpenFaaS's (faas-netes labels its Deployments and pods with it), so
// tools written for OpenFaaS find nimbus's functions too.
const (
	LabelFunction  = "nimbus.dev/function"
	LabelNamespace = "nimbus.dev/namespace"
	LabelRevision  = "nimbus.dev/revision"
	LabelOpenFaaS  = "faas_function"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationRevision is the revision a Deployment runs.
	AnnotationRevision = "nimbus.dev/revision"
	// AnnotationDeletionCost is Kubernetes's: a ReplicaSet scaled down
	// deletes its lowest-cost pods first.
	AnnotationDeletionCost = "controller.kubernetes.io/pod-deletion-cost"
	managedBy              = "nimbus"
)

// Port is the port a function's container serves HTTP on, as with Docker.
const Port = 8080

// watchdogHealthPath is where nimbus's watchdog says it is ready (as
// OpenFaaS's watchdogs do).
const watchdogHealthPath = "/_/health"

// runAsUser is the user a function runs as when its image names none
// that is not root: OpenFaaS's non-root user.
const runAsUser = 12000

// preStopSeconds keeps a terminating pod serving while the gateways learn
// it is going (its EndpointSlice says so; they stop sending it requests
// and wait for those in flight).
const preStopSeconds = 3

// ObjectName is the name of a function's Deployment and Service: the
// function's own name in the default namespace (as faas-netes names
// them), else the name (cut to fit) and a hash of namespace and name,
// within the 63 characters a Service name may have. Names can still meet
// (a default-namespace function may be called anything): the provider acts
// only on objects whose labels name the function.
func ObjectName(namespace, name string) string {
	if namespace == function.DefaultNamespace {
		return name
	}
	h := sha256.Sum256([]byte(namespace + "/" + name))
	suffix := "-" + hex.EncodeToString(h[:4])
	if len(name)+len(suffix) > 63 {
		name = strings.TrimRight(name[:63-len(suffix)], "-")
	}
	return name + suffix
}

// selector is what picks a function's pods.
func selector(fn function.Function) map[string]string {
	return map[string]string{LabelFunction: fn.Name, LabelNamespace: fn.Namespace}
}

// objectLabels are a function's objects' labels: the spec's, then nimbus's.
func objectLabels(fn function.Function) map[string]string {
	l := maps.Clone(fn.Labels)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, selector(fn))
	l[LabelOpenFaaS] = fn.Name
	l[LabelManagedBy] = managedBy
	return l
}

// SecretsDir is where a function's secrets are, a file each: where
// OpenFaaS mounts them.
const SecretsDir = "/var/openfaas/secrets"

// SecretName is the name of the Secret holding a function's secrets.
func SecretName(namespace, name string) string { return ObjectName(namespace, name) + "-secrets" }

// Secret is the Secret that holds fn's secrets' values (by name), mounted
// into its pods.
func (sp Spec) Secret(fn function.Function, values map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName(fn.Namespace, fn.Name), Namespace: sp.Namespace, Labels: objectLabels(fn)},
		Type:       corev1.SecretTypeOpaque,
		Data:       values,
	}
}

// PackageDir is where a package function's pod unpacks its package (an
// emptyDir) and runs its command.
const PackageDir = "/nimbus/fn"

// packageDirLimit bounds the package directory: the most a package may
// unpack to (archive.Limits's default), with room for what it writes.
const packageDirLimit = "1536Mi"

// Spec is what makes a function's objects besides the function itself.
type Spec struct {
	// Namespace is the functions namespace.
	Namespace string
	// RuntimeImage runs package functions: nimbus-watchdog as its
	// entrypoint fetches the package and runs the command
	// (internal/images).
	RuntimeImage string
	// Package gives the URL a pod fetches a package from (the nimbus
	// API's GET /v1/packages/DIGEST) and the token that lets it, for the
	// package digest alone. Nil: package functions cannot run.
	Package func(digest string) (url, token string)
}

// Deployment is the Deployment that runs revision rev of fn at replicas.
func (sp Spec) Deployment(fn function.Function, rev uint64, replicas int) (*appsv1.Deployment, error) {
	ns := sp.Namespace
	image := fn.Image
	if fn.Package != "" {
		if sp.Package == nil || sp.RuntimeImage == "" {
			return nil, fmt.Errorf("function %s is a package, and this nimbus runs packages on Kubernetes only when told where pods reach its API: restart it with --kube-api-url (and --kube-runtime-image)", fn.Key())
		}
		image = sp.RuntimeImage
	}
	if image == "" {
		return nil, fmt.Errorf("function %s has no image nor package: the kube provider runs one or the other", fn.Key())
	}
	res, err := resources(fn)
	if err != nil {
		return nil, err
	}
	podLabels := objectLabels(fn)
	podLabels[LabelRevision] = strconv.FormatUint(rev, 10)
	annotations := maps.Clone(fn.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationRevision] = strconv.FormatUint(rev, 10)
	env := []corev1.EnvVar{}
	for _, k := range sortedKeys(fn.Env) {
		env = append(env, corev1.EnvVar{Name: k, Value: fn.Env[k]})
	}
	env = append(env,
		corev1.EnvVar{Name: "PORT", Value: strconv.Itoa(Port)},
		corev1.EnvVar{Name: "NIMBUS_FUNCTION", Value: fn.Name},
		corev1.EnvVar{Name: "NIMBUS_NAMESPACE", Value: fn.Namespace},
		corev1.EnvVar{Name: "NIMBUS_INSTANCE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "NIMBUS_REVISION", Value: strconv.FormatUint(rev, 10)},
		corev1.EnvVar{Name: "NIMBUS_PROTOCOL", Value: fn.Protocol},
		corev1.EnvVar{Name: "NIMBUS_HEALTH_PATH", Value: fn.HealthPath},
		// The watchdog lets requests in flight finish this long when
		// the pod is stopped (a rollout, a scale-down).
		corev1.EnvVar{Name: "NIMBUS_TIMEOUT", Value: time.Duration(fn.Timeout).String()},
	)
	if len(fn.Secrets) > 0 {
		env = append(env, corev1.EnvVar{Name: "NIMBUS_SECRETS_DIR", Value: SecretsDir})
	}
	if fn.Package != "" {
		// What the runtime image's entrypoint fetches; it takes these
		// out of the environment before the function runs.
		url, token := sp.Package(fn.Package)
		env = append(env,
			corev1.EnvVar{Name: "NIMBUS_PACKAGE", Value: fn.Package},
			corev1.EnvVar{Name: "NIMBUS_PACKAGE_URL", Value: url},
			corev1.EnvVar{Name: "NIMBUS_PACKAGE_TOKEN", Value: token},
			corev1.EnvVar{Name: "NIMBUS_PACKAGE_DIR", Value: PackageDir},
		)
	}
	// Ready when the health path answers 2xx or 3xx (Kubernetes's rule,
	// stricter than the other runtimes' "any answer"); a stdio or lambda
	// function behind the watchdog is probed at the watchdog's own path,
	// which does not run it. Alive while the port accepts connections: a
	// liveness check that runs nothing and restarts only a dead server.
	ready := fn.HealthPath
	if fn.Protocol != function.ProtocolHTTP || fn.Package != "" {
		ready = watchdogHealthPath // a package runs behind the runtime image's watchdog
	}
	readiness := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: ready, Port: intstr.FromInt32(Port)}},
		PeriodSeconds:    1,
		TimeoutSeconds:   1,
		FailureThreshold: 1,
	}
	liveness := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(Port)}},
		PeriodSeconds:    10,
		TimeoutSeconds:   2,
		FailureThreshold: 3,
	}
	no, yes := false, true
	grace := int64(preStopSeconds) + int64(time.Duration(fn.Timeout).Seconds()) + 2
	c := corev1.Container{
		Name:            "function",
		Image:           image,
		Args:            fn.Command,
		Env:             env,
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
		Resources:       res,
		ReadinessProbe:  readiness,
		LivenessProbe:   liveness,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Lifecycle:       &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: preStopSeconds}}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &fn.ReadOnlyRootFilesystem,
			RunAsNonRoot:             &yes,
			RunAsUser:                ptr(int64(runAsUser)),
			RunAsGroup:               ptr(int64(runAsUser)),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	pod := corev1.PodSpec{
		Containers:                    []corev1.Container{c},
		AutomountServiceAccountToken:  &no, // functions never see platform credentials
		EnableServiceLinks:            &no, // nor the cluster's services in their environment
		TerminationGracePeriodSeconds: &grace,
	}
	if fn.ReadOnlyRootFilesystem {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("64Mi"))}}})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	}
	if len(fn.Secrets) > 0 {
		// Readable by the function's group alone (fsGroup), a file per
		// secret; the Secret is written before the pods start.
		mode := int32(0o440)
		items := make([]corev1.KeyToPath, 0, len(fn.Secrets))
		for _, s := range fn.Secrets {
			items = append(items, corev1.KeyToPath{Key: s, Path: s})
		}
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "secrets", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: SecretName(fn.Namespace, fn.Name), Items: items, DefaultMode: &mode}}})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "secrets", MountPath: SecretsDir, ReadOnly: true})
		pod.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(runAsUser))}
	}
	if fn.Package != "" {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "package", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse(packageDirLimit))}}})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "package", MountPath: PackageDir})
	}
	surge, unavailable := intstr.FromInt32(1), intstr.FromInt32(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(fn.Namespace, fn.Name), Namespace: ns, Labels: objectLabels(fn), Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: selector(fn)},
			// A new revision's pods come before the old ones go: no
			// moment without a ready replica.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: maps.Clone(annotations)},
				Spec:       pod,
			},
		},
	}, nil
}

// Service is the headless Service whose EndpointSlices list fn's ready
// pods. Headless: the gateways route to pod IPs themselves, so no
// cluster IP (and no kube-proxy rule) is made for it.
func (sp Spec) Service(fn function.Function) *corev1.Service {
	ns := sp.Namespace
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(fn.Namespace, fn.Name), Namespace: ns, Labels: objectLabels(fn)},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  selector(fn),
			Ports:     []corev1.ServicePort{{Name: "http", Port: Port, TargetPort: intstr.FromInt32(Port), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// resources are fn's limits and requests as Kubernetes quantities.
func resources(fn function.Function) (corev1.ResourceRequirements, error) {
	var out corev1.ResourceRequirements
	for _, r := range []struct {
		field string
		in    function.Resources
		into  *corev1.ResourceList
	}{{"limits", fn.Limits, &out.Limits}, {"requests", fn.Requests, &out.Requests}} {
		for name, v := range map[corev1.ResourceName]string{corev1.ResourceMemory: r.in.Memory, corev1.ResourceCPU: r.in.CPU} {
			if v == "" {
				continue
			}
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return out, fmt.Errorf("%s.%s: %q is not a Kubernetes quantity: %w", r.field, name, v, err)
			}
			if *r.into == nil {
				*r.into = corev1.ResourceList{}
			}
			(*r.into)[name] = q
		}
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
