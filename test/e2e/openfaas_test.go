package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	ofImageOnce sync.Once
	ofImageErr  error
)

// ofImage is an OpenFaaS-style image: a watchdog entrypoint (nimbus-watchdog, which
// serves /_/health like OpenFaaS's) in front of drivertest's testfn.
const ofImage = "nimbus-e2e/openfaas-fn:local"

func buildOFImage(t *testing.T) {
	ofImageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nimbus-e2e-image-")
		if err != nil {
			ofImageErr = err
			return
		}
		defer os.RemoveAll(dir)
		for out, pkg := range map[string]string{"nimbus": "nimbus/cmd/nimbus-watchdog", "testfn": "nimbus/internal/driver/drivertest/testfn"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				ofImageErr = &cmdError{string(b), err}
				return
			}
		}
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY nimbus /nimbus\nCOPY testfn /testfn\nENTRYPOINT [\"/nimbus\", \"watchdog\", \"/testfn\"]\n"), 0o644)
		if b, err := exec.Command("docker", "build", "-q", "-t", ofImage, dir).CombinedOutput(); err != nil {
			ofImageErr = &cmdError{string(b), err}
		}
	})
	if ofImageErr != nil {
		t.Fatal(ofImageErr)
	}
}

type cmdError struct {
	out string
	err error
}

func (e *cmdError) Error() string { return e.err.Error() + "\n" + e.out }

// faas sends a request the way faas-cli does: JSON body, basic auth as admin.
func (n *nimbus) faas(t *testing.T, method, path, body, password string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, n.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if password != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+password)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOpenFaaSAPI(t *testing.T) {
	needDocker(t)
	buildOFImage(t)
	data := dataDir(t)
	n := start(t, data)
	tok, _ := os.ReadFile(filepath.Join(data, "admin-token"))
	pw := strings.TrimSpace(string(tok))

	if code, _ := n.faas(t, "GET", "/system/functions", "", ""); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	if code, _ := n.faas(t, "GET", "/system/functions", "", "wrong"); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	// faas-cli deploy: PUT first (update), then POST on 404. Body as faas-cli
	// marshals requests.CreateFunctionRequest, labels always present.
	// faas-cli secret create: the value as text.
	if code, body := n.faas(t, "POST", "/system/secrets", `{"name":"api-key","value":"k-123-secret"}`, pw); code != 202 {
		t.Fatalf("secret create: %d %s", code, body)
	}
	if code, _ := n.faas(t, "POST", "/system/secrets", `{"name":"api-key","value":"again"}`, pw); code != 409 {
		t.Fatalf("second secret create: %d", code)
	}
	deploy := `{"service":"of-echo","image":"` + ofImage + `","network":"","envProcess":"","envVars":{"GREETING":"hi"},` +
		`"constraints":[],"secrets":["api-key"],"labels":{"com.openfaas.scale.zero":"true","team":"a"},"annotations":{"topic":"x"},` +
		`"limits":{"memory":"64Mi","cpu":"500m"}}`
	if code, body := n.faas(t, "PUT", "/system/functions", deploy, pw); code != 404 {
		t.Fatalf("PUT of a new function: want 404, got %d %s", code, body)
	}
	if code, body := n.faas(t, "POST", "/system/functions", deploy, pw); code != 202 {
		t.Fatalf("POST: want 202, got %d %s", code, body)
	}
	if code, _ := n.faas(t, "POST", "/system/functions", deploy, pw); code != 409 {
		t.Fatalf("second POST: want 409, got %d", code)
	}
	code, body, _ := n.invoke("POST", "/function/of-echo", "via openfaas")
	if code != 200 || body != "via openfaas" {
		t.Fatalf("invoke: %d %q", code, body)
	}
	if code, body, _ := n.invoke("GET", "/function/of-echo/secret?name=api-key", ""); code != 200 || body != "k-123-secret" {
		t.Fatalf("container cannot read its secret at /var/openfaas/secrets: %d %q", code, body)
	}
	code, list := n.faas(t, "GET", "/system/functions", "", pw)
	var fns []map[string]any
	if code != 200 || json.Unmarshal([]byte(list), &fns) != nil || len(fns) != 1 {
		t.Fatalf("list: %d %s", code, list)
	}
	f := fns[0]
	if f["name"] != "of-echo" || f["image"] != ofImage || f["invocationCount"].(float64) != 2 ||
		f["availableReplicas"].(float64) != 1 || f["namespace"] != "openfaas-fn" {
		t.Fatalf("FunctionStatus: %s", list)
	}
	if labels := f["labels"].(map[string]any); labels["team"] != "a" {
		t.Fatalf("labels not kept: %v", labels)
	}
	if limits := f["limits"].(map[string]any); limits["memory"] != "64Mi" {
		t.Fatalf("limits not kept: %v", limits)
	}
	// Visible through the native API and CLI too.
	if out := n.mustCLI("describe", "of-echo"); !strings.Contains(out, "Runtime:      docker") {
		t.Fatalf("native describe:\n%s", out)
	}
	if code, body := n.faas(t, "GET", "/system/function/of-echo", "", pw); code != 200 || !strings.Contains(body, `"envVars":{"GREETING":"hi"}`) {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, _ := n.faas(t, "GET", "/system/function/nope", "", pw); code != 404 {
		t.Fatalf("get unknown: %d", code)
	}
	// Scale to 2: nimbus keeps at least two.
	if code, body := n.faas(t, "POST", "/system/scale-function/of-echo", `{"serviceName":"of-echo","replicas":2,"namespace":""}`, pw); code != 202 {
		t.Fatalf("scale: %d %s", code, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := n.faas(t, "GET", "/system/function/of-echo", "", pw)
		if strings.Contains(body, `"availableReplicas":2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never scaled to 2: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// faas-cli deploy of a new image version: PUT answers 200.
	update := strings.Replace(deploy, `"GREETING":"hi"`, `"GREETING":"hello"`, 1)
	if code, body := n.faas(t, "PUT", "/system/functions", update, pw); code != 200 {
		t.Fatalf("PUT update: %d %s", code, body)
	}
	if code, body := n.faas(t, "POST", "/system/functions", `{"service":"Bad_Name","image":"x"}`, pw); code != 400 || !strings.Contains(body, "DNS-1035") {
		t.Fatalf("bad name: %d %s", code, body)
	}
	if code, body := n.faas(t, "GET", "/system/info", "", pw); code != 200 || !strings.Contains(body, `"provider":"nimbus"`) {
		t.Fatalf("info: %d %s", code, body)
	}
	if code, body := n.faas(t, "GET", "/system/namespaces", "", pw); code != 200 || body != "[\"openfaas-fn\"]\n" {
		t.Fatalf("namespaces: %d %q", code, body)
	}
	// faas-cli remove: the name in the body, the namespace in the query.
	if code, body := n.faas(t, "DELETE", "/system/functions?namespace=openfaas-fn", `{"functionName":"of-echo"}`, pw); code != 202 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := n.faas(t, "DELETE", "/system/functions", `{"functionName":"of-echo"}`, pw); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	if code, body := n.faas(t, "GET", "/system/secrets", "", pw); code != 200 || strings.Contains(body, "k-123") {
		t.Fatalf("secret list: %d %s", code, body)
	}
	if code, _ := n.faas(t, "DELETE", "/system/secrets", `{"name":"api-key"}`, pw); code != 202 {
		t.Fatalf("secret delete: %d", code)
	}
	if code, _ := n.faas(t, "GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
}

// A process function deployed natively shows through the OpenFaaS API.
func TestNativeFunctionsVisibleToOpenFaaS(t *testing.T) {
	data := dataDir(t)
	n := start(t, data)
	n.mustCLI("deploy", copyExample(t, "echo-bash"))
	tok, _ := os.ReadFile(filepath.Join(data, "admin-token"))
	code, body := n.faas(t, "GET", "/system/function/echo-bash", "", strings.TrimSpace(string(tok)))
	if code != 200 || !strings.Contains(body, `"name":"echo-bash"`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := n.faas(t, "DELETE", "/system/functions", `{"functionName":"echo-bash"}`, strings.TrimSpace(string(tok))); code != 202 {
		t.Fatalf("delete through OpenFaaS: %d", code)
	}
	if list := n.mustCLI("list"); strings.Contains(list, "echo-bash") {
		t.Fatal("deleted through OpenFaaS, still listed natively")
	}
}

// TestStackFile: `nimbus deploy -f stack.yml` deploys OpenFaaS stack
// functions; the provider gateway is used when no --url is given.
func TestStackFile(t *testing.T) {
	needDocker(t)
	buildOFImage(t)
	n := start(t, dataDir(t))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "stack.yml"), []byte(`version: 1.0
provider:
  name: openfaas
  gateway: `+n.URL+`
functions:
  stacked:
    lang: dockerfile
    handler: ./stacked
    image: `+ofImage+`
    environment:
      MODE: stack
    labels:
      com.openfaas.scale.zero: "true"
`), 0o644)
	out := n.mustCLI("deploy", "-f", filepath.Join(dir, "stack.yml"))
	if !strings.Contains(out, "Deployed default/stacked (created") {
		t.Fatalf("deploy -f: %s", out)
	}
	if code, body, _ := n.invoke("GET", "/function/stacked/env", ""); code != 200 || !strings.Contains(body, "MODE=stack") {
		t.Fatalf("stack function: %d %q", code, body)
	}
	os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("functions:\n  x:\n    image: y\n    replicas: 3\n"), 0o644)
	if _, errOut, code := n.cli("deploy", "-f", filepath.Join(dir, "bad.yml")); code != 1 || !strings.Contains(errOut, "replicas") {
		t.Fatalf("unknown field: exit %d %q", code, errOut)
	}
}
