package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/aws/smithy-go"
	"nimbus/internal/lambdaapi"
)

var (
	handlerOnce sync.Once
	handlerBin  []byte
	handlerErr  error
)

// lambdaHandler is the test handler (an unmodified aws-lambda-go
// program), built once per test run.
func lambdaHandler(t *testing.T) []byte {
	t.Helper()
	handlerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nimbus-e2e-lambda-")
		if err != nil {
			handlerErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "bootstrap"), "nimbus/internal/driver/drivertest/lambdafn")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			handlerErr = fmt.Errorf("build the handler: %v\n%s", err, out)
			return
		}
		handlerBin, handlerErr = os.ReadFile(filepath.Join(dir, "bootstrap"))
	})
	if handlerErr != nil {
		t.Fatal(handlerErr)
	}
	return handlerBin
}

// deployLambda deploys the test handler as bootstrap, a lambda function
// named name; extra lines are added to its nimbus.yaml.
func deployLambda(t *testing.T, n *nimbus, name string, extra ...string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), lambdaHandler(t), 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := "name: " + name + "\nprotocol: lambda\ncommand: ./bootstrap\ntimeout: 10s\n" + strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	n.mustCLI("deploy", dir)
}

// newKey creates an access key through the CLI.
func newKey(t *testing.T, n *nimbus, namespaces string) (id, secret string) {
	t.Helper()
	for _, line := range strings.Split(n.mustCLI("keys", "create", "--namespaces", namespaces), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "AWS_ACCESS_KEY_ID="); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "AWS_SECRET_ACCESS_KEY="); ok {
			secret = v
		}
	}
	return id, secret
}

// lambdaClient is aws-sdk-go-v2's Lambda client pointed at nimbus.
func lambdaClient(url, id, secret string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// TestLambdaInvokeWithTheAWSSDK calls nimbus functions with aws-sdk-go-v2's
// Lambda client, only its endpoint changed: RequestResponse, a handler
// error, Event, DryRun, an ARN; then refusals in Lambda's shape that run
// nothing: a wrong secret, an unknown key, another namespace, an unknown
// function or qualifier.
func TestLambdaInvokeWithTheAWSSDK(t *testing.T) {
	n := start(t, dataDir(t))
	deployLambda(t, n, "hello-sdk")
	id, secret := newKey(t, n, "default")
	cl := lambdaClient(n.URL, id, secret)
	ctx := context.Background()

	out, err := cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), Payload: []byte(`{"name":"sdk"}`)})
	if err != nil || out.StatusCode != 200 || out.FunctionError != nil || !strings.Contains(string(out.Payload), `"hello":"sdk"`) ||
		aws.ToString(out.ExecutedVersion) != "$LATEST" || out.LogResult != nil {
		t.Fatalf("invoke: %v %+v %s", err, out, outPayload(out))
	}
	out, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), Payload: []byte(`{"name":"tail"}`), LogType: types.LogTypeTail})
	tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if err != nil || !strings.HasPrefix(string(tail), "START RequestId: ") || !strings.Contains(string(tail), "\nhandled  tail\nEND RequestId: ") ||
		!strings.Contains(string(tail), "\nREPORT RequestId: ") {
		t.Fatalf("invoke with LogType Tail: %v, tail %q", err, tail)
	}
	out, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("arn:aws:lambda:us-east-1:000000000000:function:hello-sdk:$LATEST"),
		Payload: []byte(`{"op":"fail","name":"sdk"}`)})
	if err != nil || out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), "asked to fail: sdk") {
		t.Fatalf("a handler error by ARN: %v %+v %s", err, out, outPayload(out))
	}
	out, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), InvocationType: types.InvocationTypeEvent,
		Payload: []byte(`{"name":"event-sdk"}`)})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("Event: %v %+v", err, out)
	}
	waitUntil(t, "the event to run", 20*time.Second, func() bool {
		logs, _, _ := n.cli("logs", "hello-sdk")
		return strings.Contains(logs, "handled  event-sdk")
	})
	out, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || out.StatusCode != 204 {
		t.Fatalf("DryRun: %v %+v", err, out)
	}

	refused := func(what string, c *lambda.Client, in *lambda.InvokeInput, code string) {
		t.Helper()
		_, err := c.Invoke(ctx, in)
		if got := errorCode(err); got != code {
			t.Errorf("%s: %v (code %q), want %s", what, err, got, code)
		}
	}
	forged := &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), Payload: []byte(`{"name":"forged"}`)}
	refused("a wrong secret", lambdaClient(n.URL, id, strings.Repeat("x", 40)), forged, "InvalidSignatureException")
	refused("an unknown key", lambdaClient(n.URL, "AKIAAAAAAAAAAAAAAAAA", secret), forged, "UnrecognizedClientException")
	big := []byte(`{"pad":"` + strings.Repeat("x", lambdaapi.MaxEventPayload) + `"}`)
	refused("an Event over 1 MB", cl, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), InvocationType: types.InvocationTypeEvent, Payload: big}, "RequestTooLargeException")
	huge := []byte(`{"pad":"` + strings.Repeat("x", lambdaapi.MaxPayload) + `"}`)
	refused("a payload over 6 MB", cl, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), Payload: huge}, "RequestTooLargeException")
	refused("an unknown function", cl, &lambda.InvokeInput{FunctionName: aws.String("nope")}, "ResourceNotFoundException")
	refused("a qualifier not published", cl, &lambda.InvokeInput{FunctionName: aws.String("hello-sdk"), Qualifier: aws.String("live")}, "ResourceNotFoundException")
	refused("another namespace", cl, &lambda.InvokeInput{FunctionName: aws.String("team-b_hello-sdk")}, "AccessDeniedException")
	other, otherSecret := newKey(t, n, "team-b")
	refused("a key of another namespace", lambdaClient(n.URL, other, otherSecret), &lambda.InvokeInput{FunctionName: aws.String("default_hello-sdk")}, "AccessDeniedException")
	n.mustCLI("keys", "delete", id)
	refused("a deleted key", cl, forged, "UnrecognizedClientException")
	if logs := n.mustCLI("logs", "hello-sdk"); strings.Contains(logs, "forged") {
		t.Fatalf("a refused request ran the function:\n%s", logs)
	}
}

func outPayload(out *lambda.InvokeOutput) string {
	if out == nil {
		return ""
	}
	return string(out.Payload)
}
