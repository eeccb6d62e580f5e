package kube

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"nimbus/internal/function"
)

func TestObjectName(t *testing.T) {
	if got := ObjectName("default", "hello"); got != "hello" {
		t.Fatalf("default namespace: %q, want the function's own name (as faas-netes)", got)
	}
	a, b := ObjectName("team-a", "hello"), ObjectName("team-b", "hello")
	if a == b || !strings.HasPrefix(a, "hello-") {
		t.Fatalf("two namespaces' functions share a name: %q %q", a, b)
	}
	long := strings.Repeat("x", 63)
	if n := ObjectName("team-a", long); len(n) > 63 || n == ObjectName("team-b", long) {
		t.Fatalf("a 63-letter name: %q (%d)", n, len(n))
	}
	// Names that differ only past the cut (published versions) differ.
	v := strings.Repeat("y", 56)
	if ObjectName("team-a", v+"--v1") == ObjectName("team-a", v+"--v2") {
		t.Fatal("two long names that differ at their ends share an object name")
	}
}

func TestDeploymentIsLockedDown(t *testing.T) {
	fn := function.Function{Name: "hello", Namespace: "default", Runtime: function.RuntimeKube, Image: "localhost/hello:v1",
		Command: []string{"/hello", "-v"}, Env: map[string]string{"A": "1"}, HealthPath: "/healthz", ReadOnlyRootFilesystem: true,
		Limits: function.Resources{Memory: "64Mi", CPU: "250m"}, Labels: map[string]string{"team": "x", LabelFunction: "spoofed"}}.WithDefaults()
	d, err := (Spec{Namespace: "openfaas-fn"}).Deployment(fn, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "hello" || d.Namespace != "openfaas-fn" || *d.Spec.Replicas != 2 || d.Annotations[AnnotationRevision] != "7" {
		t.Fatalf("metadata: %+v replicas %d", d.ObjectMeta, *d.Spec.Replicas)
	}
	tl := d.Spec.Template.Labels
	if tl[LabelFunction] != "hello" || tl[LabelOpenFaaS] != "hello" || tl[LabelRevision] != "7" || tl["team"] != "x" {
		t.Fatalf("pod labels (the spec's may not override nimbus's): %v", tl)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken:
		t.Error("the pod gets a service account token: functions must not see platform credentials")
	case pod.EnableServiceLinks == nil || *pod.EnableServiceLinks:
		t.Error("the pod gets the cluster's services in its environment")
	case sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("the container may run as root: %+v", sc)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
		t.Errorf("privileges: %+v", sc)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/tmp":
		t.Errorf("read-only root with a writable /tmp: %+v %+v", sc, c.VolumeMounts)
	case c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe == nil || c.LivenessProbe.TCPSocket == nil:
		t.Errorf("probes: %+v %+v (ready on the health path; alive while the port accepts)", c.ReadinessProbe, c.LivenessProbe)
	case c.Resources.Limits.Memory().String() != "64Mi" || c.Resources.Limits.Cpu().String() != "250m":
		t.Errorf("limits: %v", c.Resources.Limits)
	case len(c.Args) != 2 || c.Args[0] != "/hello":
		t.Errorf("args: %v", c.Args)
	case c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil:
		t.Errorf("no preStop pause: a terminating pod would stop before the gateways learn it goes")
	case d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0:
		t.Errorf("a rollout may leave no replica ready: %+v", d.Spec.Strategy)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["A"] != "1" || env["PORT"] != "8080" || env["NIMBUS_REVISION"] != "7" || env["NIMBUS_TIMEOUT"] != "30s" {
		t.Errorf("env: %v", env)
	}

	// A stdio function is probed at the watchdog's own path, which does
	// not run it.
	stdio := fn
	stdio.Protocol = function.ProtocolStdio
	if d, err := (Spec{Namespace: "openfaas-fn"}).Deployment(stdio, 7, 2); err != nil || d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path != "/_/health" {
		t.Errorf("a stdio function's readiness: %v %v", err, d)
	}

	fn.Limits.Memory = "lots"
	if _, err := (Spec{Namespace: "openfaas-fn"}).Deployment(fn, 7, 2); err == nil || !strings.Contains(err.Error(), "limits.memory") {
		t.Fatalf("a bad quantity: %v, want an error naming limits.memory", err)
	}
	fn.Image = ""
	if _, err := (Spec{Namespace: "openfaas-fn"}).Deployment(fn, 7, 2); err == nil {
		t.Fatal("a function without an image made a Deployment")
	}
}

// A package function runs in the runtime image, told where to fetch its
// package (with that package's token alone) and where to unpack it.
func TestPackageDeployment(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	fn := function.Function{Name: "hello", Runtime: function.RuntimeKube, Package: digest, Command: []string{"./handler"}, ReadOnlyRootFilesystem: true}.WithDefaults()
	if err := fn.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := (Spec{Namespace: "fn"}).Deployment(fn, 1, 1); err == nil || !strings.Contains(err.Error(), "--kube-api-url") {
		t.Fatalf("no package source: %v, want an error naming --kube-api-url", err)
	}
	sp := Spec{Namespace: "fn", RuntimeImage: "localhost/nimbus-runtime:v1", Package: func(d string) (string, string) {
		return "http://nimbus.example:8080/v1/packages/" + d, "token-of-" + d
	}}
	d, err := sp.Deployment(fn, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if c.Image != sp.RuntimeImage || len(c.Args) != 1 || c.Args[0] != "./handler" {
		t.Errorf("image %q args %v: want the runtime image running the command", c.Image, c.Args)
	}
	if p := c.ReadinessProbe.HTTPGet.Path; p != "/_/health" {
		t.Errorf("readiness on %q: a package serves behind the runtime's watchdog, ready at /_/health", p)
	}
	if env["NIMBUS_PACKAGE"] != digest || env["NIMBUS_PACKAGE_URL"] != "http://nimbus.example:8080/v1/packages/"+digest ||
		env["NIMBUS_PACKAGE_TOKEN"] != "token-of-"+digest || env["NIMBUS_PACKAGE_DIR"] != PackageDir {
		t.Errorf("env: %v", env)
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if !mounts[PackageDir] || !mounts["/tmp"] {
		t.Errorf("mounts %v: the package needs a writable %s on a read-only root", c.VolumeMounts, PackageDir)
	}
	both := fn
	both.Image = "localhost/x:v1"
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("an image and a package: %v", err)
	}
	noCmd := fn
	noCmd.Command = nil
	if err := noCmd.Validate(); err == nil || !strings.Contains(err.Error(), "command") {
		t.Errorf("a package without a command: %v", err)
	}
}

// Secrets are files under /var/openfaas/secrets, from the function's
// Secret, readable by the function's group and no one else.
func TestSecretsMount(t *testing.T) {
	fn := function.Function{Name: "s", Runtime: function.RuntimeKube, Image: "localhost/s:v1", Secrets: []string{"db", "api"}}.WithDefaults()
	d, err := (Spec{Namespace: "fn"}).Deployment(fn, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	var vol *corev1.SecretVolumeSource
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			vol = v.Secret
		}
	}
	if vol == nil || vol.SecretName != SecretName("default", "s") || len(vol.Items) != 2 || vol.DefaultMode == nil || *vol.DefaultMode != 0o440 {
		t.Fatalf("the secrets volume: %+v", vol)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.FSGroup == nil || *pod.SecurityContext.FSGroup != *pod.Containers[0].SecurityContext.RunAsGroup {
		t.Fatalf("the files' group is not the function's: %+v", pod.SecurityContext)
	}
	m := pod.Containers[0].VolumeMounts
	if len(m) != 1 || m[0].MountPath != SecretsDir || !m[0].ReadOnly {
		t.Fatalf("mounts: %+v", m)
	}
	sec := (Spec{Namespace: "fn"}).Secret(fn, map[string][]byte{"db": []byte("x")})
	if sec.Namespace != "fn" || sec.Labels[LabelFunction] != "s" || string(sec.Data["db"]) != "x" {
		t.Fatalf("the Secret: %+v", sec)
	}
}
