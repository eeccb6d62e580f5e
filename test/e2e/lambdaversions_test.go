package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestLambdaVersionsWithTheAWSSDK publishes versions and names them with
// aliases through aws-sdk-go-v2's Lambda client: each version keeps what
// the function was when published and says so to its handler; Qualifier,
// function:alias ARNs and the Event type run them; an alias moves; the
// native CLI shows them; refusals are in Lambda's shape; deleting the
// function takes its versions.
func TestLambdaVersionsWithTheAWSSDK(t *testing.T) {
	n := start(t, dataDir(t))
	id, secret := newKey(t, n, "default")
	cl := lambdaClient(n.URL, id, secret)
	ctx := context.Background()
	const fn = "versioned"
	const arn = "arn:aws:lambda:us-east-1:000000000000:function:" + fn
	setGreeting := func(g string) {
		t.Helper()
		if _, err := cl.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(fn),
			Environment: &types.Environment{Variables: map[string]string{"GREETING": g}}}); err != nil {
			t.Fatal(err)
		}
	}
	created, err := cl.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(fn), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/lambda"), Code: &types.FunctionCode{ZipFile: handlerZip(t)},
		Environment: &types.Environment{Variables: map[string]string{"GREETING": "one"}}, Publish: true,
	})
	if err != nil || aws.ToString(created.Version) != "1" || aws.ToString(created.FunctionArn) != arn+":1" {
		t.Fatalf("create with Publish: %v %+v", err, created)
	}
	setGreeting("two")
	v2, err := cl.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(fn), Description: aws.String("second")})
	if err != nil || aws.ToString(v2.Version) != "2" || aws.ToString(v2.Description) != "second" {
		t.Fatalf("publish: %v %+v", err, v2)
	}
	if again, err := cl.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(fn)}); err != nil || aws.ToString(again.Version) != "2" {
		t.Fatalf("publishing an unchanged function: %v %+v", err, again)
	}
	setGreeting("three") // $LATEST moves on

	greeting := func(in *lambda.InvokeInput) (string, string) {
		t.Helper()
		out, err := cl.Invoke(ctx, in)
		if err != nil || out.FunctionError != nil {
			t.Fatalf("invoke %s %s: %v %s", aws.ToString(in.FunctionName), aws.ToString(in.Qualifier), err, outPayload(out))
		}
		var r struct {
			ARN string
			Env map[string]string
		}
		json.Unmarshal(out.Payload, &r)
		if r.Env["AWS_LAMBDA_FUNCTION_NAME"] != fn || r.Env["AWS_LAMBDA_FUNCTION_VERSION"] != aws.ToString(out.ExecutedVersion) {
			t.Fatalf("the handler of %s was told %s %s", aws.ToString(out.ExecutedVersion), r.Env["AWS_LAMBDA_FUNCTION_NAME"], r.Env["AWS_LAMBDA_FUNCTION_VERSION"])
		}
		return r.Env["GREETING"], aws.ToString(out.ExecutedVersion)
	}
	for _, c := range []struct {
		in            *lambda.InvokeInput
		greet, exeVer string
	}{
		{&lambda.InvokeInput{FunctionName: aws.String(fn)}, "three", "$LATEST"},
		{&lambda.InvokeInput{FunctionName: aws.String(fn), Qualifier: aws.String("1")}, "one", "1"},
		{&lambda.InvokeInput{FunctionName: aws.String(arn + ":2")}, "two", "2"},
	} {
		if g, v := greeting(c.in); g != c.greet || v != c.exeVer {
			t.Errorf("%s %s ran %s (version %s), want %s (%s)", aws.ToString(c.in.FunctionName), aws.ToString(c.in.Qualifier), g, v, c.greet, c.exeVer)
		}
	}

	// An alias names version 1, then moves to 2.
	alias, err := cl.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String(fn), Name: aws.String("live"), FunctionVersion: aws.String("1")})
	if err != nil || aws.ToString(alias.AliasArn) != arn+":live" || aws.ToString(alias.FunctionVersion) != "1" {
		t.Fatalf("create alias: %v %+v", err, alias)
	}
	if g, v := greeting(&lambda.InvokeInput{FunctionName: aws.String(arn + ":live")}); g != "one" || v != "1" {
		t.Fatalf("the alias ran %s (%s)", g, v)
	}
	if _, err := cl.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String(fn), Name: aws.String("live"), FunctionVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	if g, v := greeting(&lambda.InvokeInput{FunctionName: aws.String(fn), Qualifier: aws.String("live")}); g != "two" || v != "2" {
		t.Fatalf("the moved alias ran %s (%s)", g, v)
	}
	if got, err := cl.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String(fn), Name: aws.String("live")}); err != nil || aws.ToString(got.FunctionVersion) != "2" {
		t.Fatalf("get alias: %v %+v", err, got)
	}
	if list, err := cl.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String(fn)}); err != nil || len(list.Aliases) != 1 {
		t.Fatalf("list aliases: %v %+v", err, list)
	}
	if vs, err := cl.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String(fn)}); err != nil || len(vs.Versions) != 3 ||
		aws.ToString(vs.Versions[0].Version) != "$LATEST" || aws.ToString(vs.Versions[2].Version) != "2" {
		t.Fatalf("list versions: %v %+v", err, vs)
	}
	if got, err := cl.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fn), Qualifier: aws.String("live")}); err != nil ||
		got.Configuration.Environment.Variables["GREETING"] != "two" || aws.ToString(got.Configuration.Version) != "2" {
		t.Fatalf("get the alias's version: %v %+v", err, got)
	}
	if list, _ := cl.ListFunctions(ctx, &lambda.ListFunctionsInput{}); len(list.Functions) != 1 {
		t.Fatalf("versions listed as functions: %+v", list.Functions)
	}
	// An Event invocation of the alias runs version 2.
	if out, err := cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Qualifier: aws.String("live"),
		InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"name":"event-of-live"}`)}); err != nil || out.StatusCode != 202 ||
		aws.ToString(out.ExecutedVersion) != "2" {
		t.Fatalf("Event of the alias: %v %+v", err, out)
	}
	waitUntil(t, "version 2 to run the event", 20*time.Second, func() bool {
		logs, _, _ := n.cli("logs", fn+"--v2")
		return strings.Contains(logs, "handled  event-of-live")
	})

	// The native CLI shows them.
	if out := n.mustCLI("versions", fn); !strings.Contains(out, "versioned--v1") || !strings.Contains(out, "live") {
		t.Fatalf("nimbus versions:\n%s", out)
	}
	if out := n.mustCLI("list"); strings.Contains(out, "--v") {
		t.Fatalf("nimbus list shows versions:\n%s", out)
	}

	refused := func(what string, err error, code string) {
		t.Helper()
		if got := errorCode(err); got != code {
			t.Errorf("%s: %v (code %q), want %s", what, err, got, code)
		}
	}
	_, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Qualifier: aws.String("9")})
	refused("an unpublished version", err, "ResourceNotFoundException")
	_, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Qualifier: aws.String("beta")})
	refused("an unknown alias", err, "ResourceNotFoundException")
	_, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn + "--v1")})
	refused("a version by its nimbus name", err, "ValidationException")
	_, err = cl.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String(fn), Name: aws.String("live"), FunctionVersion: aws.String("1")})
	refused("a second alias live", err, "ResourceConflictException")
	_, err = cl.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String(fn), Name: aws.String("next"), FunctionVersion: aws.String("7")})
	refused("an alias of no version", err, "ResourceNotFoundException")
	_, err = cl.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(fn), Qualifier: aws.String("2")})
	refused("deleting a version an alias names", err, "ResourceConflictException")
	_, err = cl.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(fn), CodeSha256: aws.String("stale")})
	refused("publishing with a stale CodeSha256", err, "PreconditionFailedException")

	// Delete version 1, then the alias, then the function with the rest.
	if _, err := cl.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(fn), Qualifier: aws.String("1")}); err != nil {
		t.Fatalf("delete version 1: %v", err)
	}
	_, err = cl.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(fn), Qualifier: aws.String("1")})
	refused("a deleted version", err, "ResourceNotFoundException")
	if _, err := cl.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String(fn), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(fn)}); err != nil {
		t.Fatal(err)
	}
	if _, _, code := n.cli("describe", fn+"--v2"); code == 0 {
		t.Fatal("version 2 outlived its function")
	}
}
