package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLambdaHandlerThroughNimbus deploys an unmodified aws-lambda-go handler
// (built as bootstrap) with protocol lambda and calls it through the
// binary, synchronously and asynchronously; a handler error is a 500 in
// Lambda's shape, retried, then a dead letter. It runs as a process from a
// package, and in a container from an image whose entrypoint is the
// bootstrap, as a Lambda container image.
func TestLambdaHandlerThroughNimbus(t *testing.T) {
	const common = "protocol: lambda\ntimeout: 10s\nenv:\n  GREETING: hi\nasync:\n  maxRetries: 1\n  backoff: 20ms\n"
	t.Run("process", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "bootstrap"), lambdaHandler(t), 0o755); err != nil {
			t.Fatal(err)
		}
		testLambdaThroughNimbus(t, dir, "name: hello-lambda\ncommand: ./bootstrap\n"+common)
	})
	t.Run("docker", func(t *testing.T) {
		needDocker(t)
		ctx := t.TempDir()
		if err := os.WriteFile(filepath.Join(ctx, "bootstrap"), lambdaHandler(t), 0o755); err != nil {
			t.Fatal(err)
		}
		df := "FROM scratch\nCOPY bootstrap /var/runtime/bootstrap\nENTRYPOINT [\"/var/runtime/bootstrap\"]\n"
		if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		const image = "nimbus-e2e/lambda:local"
		if b, err := exec.Command("docker", "build", "-q", "-t", image, ctx).CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, b)
		}
		dir := t.TempDir()
		testLambdaThroughNimbus(t, dir, "name: hello-lambda\nruntime: docker\nimage: "+image+"\n"+common)
	})
}

func testLambdaThroughNimbus(t *testing.T, dir, yaml string) {
	n := start(t, dataDir(t))
	if err := os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	n.mustCLI("deploy", dir)

	code, body, hdr := n.invoke("POST", "/function/hello-lambda", `{"name":"e2e"}`)
	var r struct {
		Hello, RequestID, ARN string
		Env                   map[string]string
	}
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.Hello != "e2e" || r.RequestID == "" ||
		!strings.HasSuffix(r.ARN, ":function:hello-lambda") || r.Env["GREETING"] != "hi" || hdr.Get("X-Call-Id") == "" || hdr.Get("X-Call-Id") != r.RequestID {
		t.Fatalf("sync invoke: %d %s %v", code, body, hdr)
	}
	code, body, hdr = n.invoke("POST", "/function/hello-lambda", `{"op":"fail","name":"e2e"}`)
	if code != 500 || hdr.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(body, "asked to fail: e2e") {
		t.Fatalf("handler error: %d %s %v", code, body, hdr)
	}

	// Async: executed once, recorded done; a failing one retried, then a
	// dead letter carrying Lambda's error.
	_, _, hdr = n.invoke("POST", "/async-function/hello-lambda", `{"name":"later"}`)
	ok := hdr.Get("X-Call-Id")
	_, _, hdr = n.invoke("POST", "/async-function/hello-lambda", `{"op":"fail","name":"async"}`)
	bad := hdr.Get("X-Call-Id")
	if ok == "" || bad == "" {
		t.Fatalf("async calls not accepted: %v", hdr)
	}
	waitUntil(t, "the async call to be done", 20*time.Second, func() bool {
		out, _, code := n.cli("calls", "get", ok, "-o", "json")
		return code == 0 && strings.Contains(out, `"state": "done"`) && strings.Contains(out, `"status": 200`)
	})
	waitUntil(t, "the failing async call's dead letter", 20*time.Second, func() bool {
		out, _, code := n.cli("dlq", "show", bad)
		return code == 0 && strings.Contains(out, "Attempts:      2") && strings.Contains(out, "asked to fail: async")
	})
	logs := n.mustCLI("logs", "hello-lambda")
	if !strings.Contains(logs, "handled  e2e") || !strings.Contains(logs, "handled  later") {
		t.Fatalf("the handler's output is not in its logs:\n%s", logs)
	}
}

// TestKeysCLI: nimbus keys create shows the secret once; list never does;
// delete, and delete again is an error in words.
func TestKeysCLI(t *testing.T) {
	n := start(t, dataDir(t))
	out := n.mustCLI("keys", "create", "--namespaces", "default,team-a", "--description", "e2e")
	var id, secret string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "AWS_ACCESS_KEY_ID="); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "AWS_SECRET_ACCESS_KEY="); ok {
			secret = v
		}
	}
	if !strings.HasPrefix(id, "AKIA") || len(secret) != 40 || !strings.Contains(out, "default, team-a") {
		t.Fatalf("keys create:\n%s", out)
	}
	list := n.mustCLI("keys", "list")
	if !strings.Contains(list, id) || !strings.Contains(list, "default,team-a") || strings.Contains(list, secret) {
		t.Fatalf("keys list:\n%s", list)
	}
	if _, errOut, code := n.cli("keys", "create", "--namespaces", "Bad_NS"); code == 0 || !strings.Contains(errOut, "namespaces[0]") {
		t.Fatalf("a bad namespace: %d %s", code, errOut)
	}
	n.mustCLI("keys", "delete", id)
	if list := n.mustCLI("keys", "list", "-o", "json"); strings.Contains(list, id) {
		t.Fatalf("after delete:\n%s", list)
	}
	if _, errOut, code := n.cli("keys", "delete", id); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("delete again: %d %s", code, errOut)
	}
}
