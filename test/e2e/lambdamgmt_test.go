package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// handlerZip builds the test handler as bootstrap and zips it, executable,
// as a Lambda deployment package.
func handlerZip(t *testing.T) []byte {
	t.Helper()
	bin := lambdaHandler(t)
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w, _ := zw.CreateHeader(h)
	w.Write(bin)
	zw.Close()
	return b.Bytes()
}

// TestLambdaFunctionsWithTheAWSSDK manages a function with aws-sdk-go-v2's
// Lambda client: create from a zip, invoke, get, list, update its
// configuration and code, set its async settings, delete; and the
// refusals of each, in Lambda's shape.
func TestLambdaFunctionsWithTheAWSSDK(t *testing.T) {
	n := start(t, dataDir(t))
	id, secret := newKey(t, n, "default")
	cl := lambdaClient(n.URL, id, secret)
	ctx := context.Background()
	code := handlerZip(t)

	created, err := cl.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("made-by-sdk"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/lambda"), Code: &types.FunctionCode{ZipFile: code},
		Timeout: aws.Int32(10), MemorySize: aws.Int32(256), Description: aws.String("from the SDK"),
		Environment: &types.Environment{Variables: map[string]string{"GREETING": "hola"}},
	})
	if err != nil || aws.ToString(created.FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:made-by-sdk" ||
		aws.ToInt32(created.MemorySize) != 256 || aws.ToInt32(created.Timeout) != 10 || created.Runtime != types.RuntimeProvidedal2023 {
		t.Fatalf("create: %v %+v", err, created)
	}
	out, err := cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("made-by-sdk"), Payload: []byte(`{"name":"zip"}`)})
	if err != nil || !strings.Contains(string(out.Payload), `"GREETING":"hola"`) || !strings.Contains(string(out.Payload), `"AWS_LAMBDA_FUNCTION_MEMORY_SIZE":"256"`) {
		t.Fatalf("invoke the created function: %v %s", err, outPayload(out))
	}
	got, err := cl.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("made-by-sdk")})
	if err != nil || aws.ToString(got.Configuration.Handler) != "bootstrap" || aws.ToString(got.Configuration.Description) != "from the SDK" ||
		got.Configuration.Environment.Variables["GREETING"] != "hola" || aws.ToInt64(&got.Configuration.CodeSize) != int64(len(code)) {
		t.Fatalf("get: %v %+v", err, got)
	}
	list, err := cl.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(list.Functions) != 1 || aws.ToString(list.Functions[0].FunctionName) != "made-by-sdk" {
		t.Fatalf("list: %v %+v", err, list)
	}
	if _, err := cl.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("made-by-sdk"),
		Environment: &types.Environment{Variables: map[string]string{"GREETING": "adios"}}}); err != nil {
		t.Fatalf("update configuration: %v", err)
	}
	out, _ = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("made-by-sdk"), Payload: []byte(`{}`)})
	if !strings.Contains(string(out.Payload), `"GREETING":"adios"`) {
		t.Fatalf("after the update: %s", out.Payload)
	}
	if _, err := cl.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("made-by-sdk"), ZipFile: code}); err != nil {
		t.Fatalf("update code: %v", err)
	}
	cfg, err := cl.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("made-by-sdk"),
		MaximumRetryAttempts: aws.Int32(0), MaximumEventAgeInSeconds: aws.Int32(120)})
	if err != nil || aws.ToInt32(cfg.MaximumRetryAttempts) != 0 || aws.ToInt32(cfg.MaximumEventAgeInSeconds) != 120 {
		t.Fatalf("event invoke config: %v %+v", err, cfg)
	}
	if desc := n.mustCLI("describe", "made-by-sdk", "-o", "json"); !strings.Contains(desc, `"maxRetries": 0`) || !strings.Contains(desc, `"maxEventAge": "2m0s"`) {
		t.Fatalf("the async settings in nimbus's spec:\n%s", desc)
	}

	refused := func(what string, err error, code string) {
		t.Helper()
		if got := errorCode(err); got != code {
			t.Errorf("%s: %v (code %q), want %s", what, err, got, code)
		}
	}
	_, err = cl.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("made-by-sdk"), Runtime: types.RuntimeProvidedal2023,
		Role: aws.String("r"), Code: &types.FunctionCode{ZipFile: code}})
	refused("create again", err, "ResourceConflictException")
	_, err = cl.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("node-fn"), Runtime: types.RuntimeNodejs20x,
		Handler: aws.String("index.handler"), Role: aws.String("r"), Code: &types.FunctionCode{ZipFile: code}})
	refused("a runtime that does not run here", err, "InvalidParameterValueException")
	_, err = cl.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("bad-zip"), Runtime: types.RuntimeProvidedal2023,
		Role: aws.String("r"), Code: &types.FunctionCode{ZipFile: []byte("not a zip")}})
	refused("a zip that is not one", err, "InvalidParameterValueException")
	_, err = cl.PutFunctionEventInvokeConfig(ctx, &lambda.PutFunctionEventInvokeConfigInput{FunctionName: aws.String("made-by-sdk"), MaximumRetryAttempts: aws.Int32(5)})
	refused("five retries", err, "InvalidParameterValueException")
	_, err = cl.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("made-by-sdk"), Timeout: aws.Int32(901)})
	refused("a timeout over 900 s", err, "InvalidParameterValueException")
	for _, name := range []string{"node-fn", "bad-zip"} {
		if _, err := cl.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)}); errorCode(err) != "ResourceNotFoundException" {
			t.Errorf("a refused create stored %s: %v", name, err)
		}
	}
	if _, err := cl.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("made-by-sdk")}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = cl.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("made-by-sdk")})
	refused("get after delete", err, "ResourceNotFoundException")
	_, err = cl.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("made-by-sdk")})
	refused("delete again", err, "ResourceNotFoundException")
}
