package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestNodeLambdaHandler runs a Node.js Lambda handler made by `nimbus new
// --lang lambda-node`, through AWS's own runtime interface client from npm
// (aws-lambda-ric), which the template's bootstrap starts: synchronously,
// asynchronously and through the Lambda API with a log tail; a thrown
// error in Lambda's shape; a handler module that does not load fails its
// start with the client's init error.
func TestNodeLambdaHandler(t *testing.T) {
	need(t, "node")
	ric := filepath.Join(repoRoot(), "test", "e2e", "lambdanode", "node_modules")
	if _, err := os.Stat(filepath.Join(ric, "aws-lambda-ric", "dist", "rapid-client.node")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must install the Lambda runtime interface client (npm ci --prefix test/e2e/lambdanode): %v", err)
		}
		t.Skip("the Lambda runtime interface client is not installed: run npm ci --prefix test/e2e/lambdanode (it builds with make, cmake, g++, autoconf, automake and libtool)")
	}
	n := start(t, dataDir(t))
	dir := filepath.Join(t.TempDir(), "hello-node")
	n.mustCLI("new", "hello-node", "--lang", "lambda-node", "--dir", dir)
	os.Chmod(filepath.Dir(dir), 0o755)
	// What npm install makes, copied rather than built again.
	if out, err := exec.Command("cp", "-a", ric, filepath.Join(dir, "node_modules")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	handler := `exports.handler = async (event, context) => {
  console.log("handled", event.name);
  if (event.op === "fail") throw new TypeError("asked to fail: " + event.name);
  return { hello: event.name, requestId: context.awsRequestId, arn: context.invokedFunctionArn,
    remainingMs: context.getRemainingTimeInMillis(), fn: process.env.AWS_LAMBDA_FUNCTION_NAME, region: process.env.AWS_REGION };
};
`
	if err := os.WriteFile(filepath.Join(dir, "index.js"), []byte(handler), 0o644); err != nil {
		t.Fatal(err)
	}
	out := n.mustCLI("deploy", dir)
	if !strings.Contains(out, "Deployed default/hello-node") {
		t.Fatalf("deploy: %s", out)
	}

	code, body, _ := n.invoke("POST", "/function/hello-node", `{"name":"node"}`)
	var r struct {
		Hello, RequestID, ARN, Fn, Region string
		RemainingMs                       int64
	}
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.Hello != "node" || r.RequestID == "" ||
		r.ARN != "arn:aws:lambda:us-east-1:000000000000:function:hello-node" || r.Fn != "hello-node" || r.Region != "us-east-1" ||
		r.RemainingMs <= 0 || r.RemainingMs > 30000 {
		logs, _, _ := n.cli("logs", "hello-node")
		t.Fatalf("sync: %d %s\n%s", code, body, logs)
	}
	code, body, hdr := n.invoke("POST", "/function/hello-node", `{"op":"fail","name":"js"}`)
	if code != 500 || hdr.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(body, `"errorType":"TypeError"`) ||
		!strings.Contains(body, `"errorMessage":"asked to fail: js"`) {
		t.Fatalf("a thrown error: %d %s", code, body)
	}
	_, _, hdr = n.invoke("POST", "/async-function/hello-node", `{"name":"later"}`)
	if id := hdr.Get("X-Call-Id"); id == "" {
		t.Fatalf("async not accepted: %v", hdr)
	} else {
		waitUntil(t, "the async call to be done", 20*time.Second, func() bool {
			out, _, code := n.cli("calls", "get", id, "-o", "json")
			return code == 0 && strings.Contains(out, `"state": "done"`)
		})
	}

	// Through the Lambda API, with the log tail.
	kid, secret := newKey(t, n, "default")
	res, err := lambdaClient(n.URL, kid, secret).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("hello-node"),
		Payload: []byte(`{"name":"sdk"}`), LogType: "Tail"})
	tail, _ := base64.StdEncoding.DecodeString(aws.ToString(res.LogResult))
	if err != nil || !strings.Contains(string(res.Payload), `"hello":"sdk"`) || !strings.Contains(string(tail), "INFO\thandled sdk") {
		t.Fatalf("invoke through the Lambda API: %v %s\ntail: %s", err, outPayload(res), tail)
	}

	// A handler module that does not load: the start fails with the
	// client's init error.
	yaml := strings.Replace(readFile(t, filepath.Join(dir, "nimbus.yaml")), "index.handler", "missing.handler", 1)
	yaml = strings.Replace(yaml, "name: hello-node", "name: broken-node", 1)
	os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte(yaml), 0o644)
	n.mustCLI("deploy", dir)
	code, body, _ = n.invoke("POST", "/function/broken-node", `{}`)
	if code != 503 && code != 502 {
		t.Fatalf("a handler that does not load: %d %s", code, body)
	}
	waitUntil(t, "the init error in the logs", 10*time.Second, func() bool {
		logs, _, _ := n.cli("logs", "broken-node")
		return strings.Contains(logs, "Runtime.ImportModuleError")
	})
}
