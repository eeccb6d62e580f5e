package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"nimbus/internal/provider/kube/kubetest"
)

// TestReplicaBot runs examples/replica-bot on the test cluster: an event
// posted to the events API makes the scaler scale a real Deployment (by
// name and count from the event) with a ServiceAccount token of its own,
// then emit an event carrying the request's id and time, which the
// recorder writes to a SQLite database. The Deployment's replicas and the
// record are checked; a malformed request changes nothing.
func TestReplicaBot(t *testing.T) {
	cfg := kubetest.Cluster(t)
	need(t, "python3")
	ns := kubetest.Namespace(t, cfg)
	image := kubetest.TestfnImage(t)

	// The Deployment to scale, and a credential that may scale it and
	// nothing else.
	one, no, yes := int32(1), false, true
	labels := map[string]string{"app": "web"}
	kubetest.Create(t, cfg, "/apis/apps/v1/namespaces/"+ns+"/deployments", &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				AutomountServiceAccountToken: &no,
				Containers: []corev1.Container{{Name: "web", Image: image, ImagePullPolicy: corev1.PullNever,
					Env:             []corev1.EnvVar{{Name: "PORT", Value: "8080"}},
					SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: ptrTo(int64(12000))}}}}}},
	})
	kubetest.Create(t, cfg, "/api/v1/namespaces/"+ns+"/serviceaccounts", &corev1.ServiceAccount{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: metav1.ObjectMeta{Name: "replica-bot"}})
	kubetest.Create(t, cfg, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/roles", &rbacv1.Role{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: metav1.ObjectMeta{Name: "replica-bot"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "patch"}}}})
	kubetest.Create(t, cfg, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/rolebindings", &rbacv1.RoleBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: metav1.ObjectMeta{Name: "replica-bot"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "replica-bot"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "replica-bot", Namespace: ns}}})
	var tr authenticationv1.TokenRequest
	kubetest.CreateInto(t, cfg, "/api/v1/namespaces/"+ns+"/serviceaccounts/replica-bot/token", &authenticationv1.TokenRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"},
		Spec:     authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(3600))}}, &tr)
	ca := cfg.TLSClientConfig.CAData
	if len(ca) == 0 {
		ca = []byte(readFile(t, cfg.TLSClientConfig.CAFile))
	}
	if tr.Status.Token == "" || len(ca) == 0 {
		t.Fatalf("no token (%d bytes) or CA (%d bytes) for the scaler", len(tr.Status.Token), len(ca))
	}

	var client cloudevents.Client
	events := freeAddr(t)
	n := start(t, dataDir(t), "--events-listen", events)
	token := strings.TrimSpace(readFile(t, n.dataDir+"/admin-token"))
	api := func(method, path, body string) {
		t.Helper()
		code, b, _ := n.invoke(method, path, body, "Authorization", "Bearer "+token, "Content-Type", "application/json")
		if code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, code, b)
		}
	}
	for name, v := range map[string]string{"kube-server": cfg.Host, "kube-token": tr.Status.Token, "kube-ca": string(ca)} {
		b, _ := json.Marshal(map[string]string{"value": v})
		api("PUT", "/v1/secrets/"+name, string(b))
	}
	// The examples as they are, told where the events API and the
	// database are.
	// The recorder runs as a user of its own: the database's directory is
	// open to it, and its parents let it through (t.TempDir's do not).
	dbDir, err := os.MkdirTemp("", "replica-bot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dbDir) })
	os.Chmod(dbDir, 0o1777)
	db := filepath.Join(dbDir, "scaled.db")
	scaler, recorder := copyExample(t, "replica-bot/scaler"), copyExample(t, "replica-bot/recorder")
	rewrite(t, filepath.Join(scaler, "nimbus.yaml"), "http://127.0.0.1:4000/replicas", "http://"+events+"/replicas")
	rewrite(t, filepath.Join(recorder, "nimbus.yaml"), "/var/lib/replica-bot/scaled.db", db)
	n.mustCLI("deploy", scaler)
	n.mustCLI("deploy", recorder)
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"replica-scaler", "replica-recorder"} {
				out, _, _ := n.cli("logs", f)
				t.Logf("%s's logs:\n%s", f, out)
			}
		}
	})
	for _, s := range []string{
		`/eventtypes {"name":"replicas.requested"}`,
		`/eventtypes {"name":"replicas.scaled"}`,
		`/functions {"functionId":"replica-scaler","type":"nimbus","provider":{"function":"replica-scaler"},"eventFormat":"ce-1.0-structured"}`,
		`/functions {"functionId":"replica-recorder","type":"nimbus","provider":{"function":"replica-recorder"},"eventFormat":"ce-1.0-structured"}`,
		`/subscriptions {"type":"async","eventType":"replicas.requested","functionId":"replica-scaler","path":"/replicas"}`,
		`/subscriptions {"type":"async","eventType":"replicas.scaled","functionId":"replica-recorder","path":"/replicas"}`,
	} {
		path, body, _ := strings.Cut(s, " ")
		api("POST", "/v1/spaces/default"+path, body)
	}

	client, err = cloudevents.NewClientHTTP(cloudevents.WithTarget("http://" + events + "/replicas"))
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string, at time.Time, data map[string]any) {
		t.Helper()
		ev := cloudevents.NewEvent()
		ev.SetID(id)
		ev.SetSource("/ops")
		ev.SetType("replicas.requested")
		ev.SetTime(at)
		ev.SetData(cloudevents.ApplicationJSON, data)
		if res := client.Send(context.Background(), ev); !cloudevents.IsACK(res) {
			t.Fatalf("sending %s: %v", id, res)
		}
	}
	// A malformed request first: the scaler says so and changes nothing.
	send("bad-1", time.Now(), map[string]any{"namespace": ns, "deployment": "web", "replicas": -2})
	at := time.Now().UTC().Truncate(time.Millisecond)
	send("scale-web-3", at, map[string]any{"namespace": ns, "deployment": "web", "replicas": 3})

	path := "/apis/apps/v1/namespaces/" + ns + "/deployments/web"
	waitUntil(t, "the Deployment at 3 ready replicas", 120*time.Second, func() bool {
		var d appsv1.Deployment
		return kubetest.Get(t, cfg, path, &d) == 200 && d.Spec.Replicas != nil && *d.Spec.Replicas == 3 && d.Status.ReadyReplicas == 3
	})
	type row struct {
		EventID, EventTime, Namespace, Deployment string
		Replicas                                  int
	}
	var rows []row
	waitUntil(t, "the record", 60*time.Second, func() bool {
		out, err := exec.Command("python3", "-c", `import json, sqlite3, sys
try:
    db = sqlite3.connect(sys.argv[1])
    rows = db.execute("SELECT event_id, event_time, namespace, deployment, replicas FROM scaled").fetchall()
except sqlite3.OperationalError:
    rows = []
print(json.dumps([dict(zip(["EventID", "EventTime", "Namespace", "Deployment", "Replicas"], r)) for r in rows]))`, db).Output()
		return err == nil && json.Unmarshal(out, &rows) == nil && len(rows) > 0
	})
	if len(rows) != 1 {
		t.Fatalf("records: %+v, want one (the malformed request made none)", rows)
	}
	r := rows[0]
	got, err := time.Parse(time.RFC3339Nano, r.EventTime)
	if r.EventID != "scale-web-3" || err != nil || !got.Equal(at) || r.Namespace != ns || r.Deployment != "web" || r.Replicas != 3 {
		t.Fatalf("the record: %+v (time %v), want event scale-web-3 at %s, %s/web at 3", r, err, at.Format(time.RFC3339Nano), ns)
	}
	if logs := n.mustCLI("logs", "replica-scaler"); !strings.Contains(logs, "ignored event bad-1") {
		t.Fatalf("the scaler's logs do not say it ignored the malformed request:\n%s", logs)
	}
}

// rewrite replaces old with new in a file, which must hold old.
func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b := readFile(t, path)
	if !strings.Contains(b, old) {
		t.Fatalf("%s does not hold %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(b, old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ptrTo[T any](v T) *T { return &v }
