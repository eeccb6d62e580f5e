package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// awsCLI is Debian's aws CLI (package awscli), preferred over any other on
// the PATH.
func awsCLI(t *testing.T) string {
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		return "/usr/bin/aws"
	}
	p, err := exec.LookPath("aws")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the aws CLI is not installed; .ci/run installs it (apt-get install awscli)")
		}
		t.Skip("the aws CLI is not installed on this machine (apt-get install awscli); this test needs it")
	}
	return p
}

// runAWS runs the aws CLI against nimbus with a key and no configuration
// of the machine's.
func runAWS(t *testing.T, bin, url, id, secret string, args ...string) (string, string, int) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, append(args, "--endpoint-url", url, "--region", "us-east-1", "--no-cli-pager")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_ACCESS_KEY_ID=" + id, "AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_MAX_ATTEMPTS=1", "AWS_EC2_METADATA_DISABLED=true"}
	cmd.Dir = home
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestAWSCLIInvoke invokes a nimbus function with Debian's aws CLI, only
// --endpoint-url pointing at nimbus; a wrong secret is refused in words.
func TestAWSCLIInvoke(t *testing.T) {
	bin := awsCLI(t)
	n := start(t, dataDir(t))
	deployLambda(t, n, "hello-cli")
	id, secret := newKey(t, n, "default")
	outFile := filepath.Join(t.TempDir(), "out.json")
	stdout, stderr, code := runAWS(t, bin, n.URL, id, secret, "lambda", "invoke", "--function-name", "hello-cli",
		"--cli-binary-format", "raw-in-base64-out", "--payload", `{"name":"cli"}`, "--log-type", "Tail", outFile)
	got, _ := os.ReadFile(outFile)
	var res struct{ LogResult string }
	json.Unmarshal([]byte(stdout), &res)
	tail, _ := base64.StdEncoding.DecodeString(res.LogResult)
	if code != 0 || !strings.Contains(stdout, `"StatusCode": 200`) || !strings.Contains(stdout, `"ExecutedVersion": "$LATEST"`) ||
		!strings.Contains(string(got), `"hello":"cli"`) || !strings.Contains(string(tail), "\nhandled  cli\nEND RequestId: ") {
		t.Fatalf("aws lambda invoke: exit %d\nstdout: %s\nstderr: %s\nanswer: %s\ntail: %s", code, stdout, stderr, got, tail)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "invoke", "--function-name", "hello-cli",
		"--cli-binary-format", "raw-in-base64-out", "--payload", `{"op":"fail","name":"cli"}`, outFile)
	got, _ = os.ReadFile(outFile)
	if code != 0 || !strings.Contains(stdout, `"FunctionError": "Unhandled"`) || !strings.Contains(string(got), "asked to fail: cli") {
		t.Fatalf("a handler error: exit %d\nstdout: %s\nstderr: %s\nanswer: %s", code, stdout, stderr, got)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "invoke", "--function-name", "hello-cli",
		"--invocation-type", "Event", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"name":"cli-event"}`, outFile)
	if code != 0 || !strings.Contains(stdout, `"StatusCode": 202`) {
		t.Fatalf("an Event invocation: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	_, stderr, code = runAWS(t, bin, n.URL, id, strings.Repeat("x", 40), "lambda", "invoke", "--function-name", "hello-cli", outFile)
	if code == 0 || !strings.Contains(stderr, "InvalidSignatureException") {
		t.Fatalf("a wrong secret: exit %d\nstderr: %s", code, stderr)
	}

	// create-function from a zip, list-functions, invoke it, delete-function.
	zipFile := filepath.Join(t.TempDir(), "function.zip")
	if err := os.WriteFile(zipFile, handlerZip(t), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "create-function", "--function-name", "from-cli",
		"--runtime", "provided.al2023", "--handler", "bootstrap", "--role", "arn:aws:iam::000000000000:role/lambda",
		"--zip-file", "fileb://"+zipFile, "--environment", "Variables={GREETING=cli}")
	if code != 0 || !strings.Contains(stdout, `"FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:from-cli"`) {
		t.Fatalf("create-function: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "list-functions")
	if code != 0 || !strings.Contains(stdout, `"FunctionName": "from-cli"`) || !strings.Contains(stdout, `"FunctionName": "hello-cli"`) {
		t.Fatalf("list-functions: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	_, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "invoke", "--function-name", "from-cli",
		"--cli-binary-format", "raw-in-base64-out", "--payload", `{"name":"zip"}`, outFile)
	got, _ = os.ReadFile(outFile)
	if code != 0 || !strings.Contains(string(got), `"GREETING":"cli"`) {
		t.Fatalf("invoke the created function: exit %d\nstderr: %s\nanswer: %s", code, stderr, got)
	}
	// publish-version, create-alias, invoke --qualifier the alias after
	// $LATEST moved on, list-versions-by-function.
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "publish-version", "--function-name", "from-cli", "--description", "first")
	if code != 0 || !strings.Contains(stdout, `"Version": "1"`) {
		t.Fatalf("publish-version: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "create-alias", "--function-name", "from-cli", "--name", "live", "--function-version", "1")
	if code != 0 || !strings.Contains(stdout, `"AliasArn": "arn:aws:lambda:us-east-1:000000000000:function:from-cli:live"`) {
		t.Fatalf("create-alias: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "update-function-configuration", "--function-name", "from-cli",
		"--environment", "Variables={GREETING=later}"); code != 0 {
		t.Fatalf("update-function-configuration: exit %d\nstderr: %s", code, stderr)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "invoke", "--function-name", "from-cli", "--qualifier", "live",
		"--cli-binary-format", "raw-in-base64-out", "--payload", `{}`, outFile)
	got, _ = os.ReadFile(outFile)
	if code != 0 || !strings.Contains(stdout, `"ExecutedVersion": "1"`) || !strings.Contains(string(got), `"GREETING":"cli"`) {
		t.Fatalf("invoke --qualifier live: exit %d\nstdout: %s\nstderr: %s\nanswer: %s", code, stdout, stderr, got)
	}
	stdout, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "list-versions-by-function", "--function-name", "from-cli")
	if code != 0 || !strings.Contains(stdout, `"Version": "$LATEST"`) || !strings.Contains(stdout, `"Description": "first"`) {
		t.Fatalf("list-versions-by-function: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "delete-function", "--function-name", "from-cli"); code != 0 {
		t.Fatalf("delete-function: exit %d\nstderr: %s", code, stderr)
	}
	if _, stderr, code = runAWS(t, bin, n.URL, id, secret, "lambda", "get-function", "--function-name", "from-cli"); code == 0 || !strings.Contains(stderr, "ResourceNotFoundException") {
		t.Fatalf("get-function after delete: exit %d\nstderr: %s", code, stderr)
	}
}
