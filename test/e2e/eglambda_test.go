package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEventGatewayLambdaFunctions registers Event Gateway functions of type
// awslambda, in the body the Event Gateway's README gives (its ARN made
// one of nimbus's), and in the older form its docs give with keys: an ARN
// of nimbus's account resolves to the space's own namespace; with keys it
// goes through the Lambda Invoke API, signed, and reaches the key's
// namespace; a space without keys cannot reach another namespace, and a
// wrong secret runs nothing. Secrets are never shown back.
func TestEventGatewayLambdaFunctions(t *testing.T) {
	n := start(t, dataDir(t))
	deployLambda(t, n, "hello-eg")
	deployLambda(t, n, "other-eg", "namespace: team-b")
	id, secret := newKey(t, n, "team-b")
	token := strings.TrimSpace(readFile(t, n.dataDir+"/admin-token"))
	cfg := func(method, path, body string) (int, string) {
		t.Helper()
		code, b, _ := n.invoke(method, path, body, "Authorization", "Bearer "+token, "Content-Type", "application/json")
		return code, b
	}
	must := func(code int, b string) {
		t.Helper()
		if code != 201 && code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	// The README's body, verbatim but for the ARN.
	must(cfg("POST", "/v1/spaces/default/functions", `{
    "functionId": "hello",
    "type": "awslambda",
    "provider":{
      "arn": "arn:aws:lambda:us-east-1:000000000000:function:hello-eg",
      "region": "us-east-1"
    }
}`))
	// The older form (provider.type, accessKeyId, secretAccessKey), with a
	// key of team-b.
	must(cfg("POST", "/v1/spaces/default/functions", `{"functionId": "keyed", "provider":{"type": "awslambda", "arn": "arn:aws:lambda:us-east-1:000000000000:function:team-b_other-eg", "region": "us-east-1", "accessKeyId": "`+id+`", "secretAccessKey": "`+secret+`"}}`))
	n.mustCLI("publish", "hello-eg")
	must(cfg("POST", "/v1/spaces/default/functions", `{"functionId": "pinned", "type": "awslambda", "provider":{"arn": "arn:aws:lambda:us-east-1:000000000000:function:hello-eg:1", "region": "us-east-1"}}`))
	must(cfg("POST", "/v1/spaces/default/functions", `{"functionId": "nokey", "type": "awslambda", "provider":{"arn": "arn:aws:lambda:us-east-1:000000000000:function:team-b_other-eg", "region": "us-east-1"}}`))
	must(cfg("POST", "/v1/spaces/default/functions", `{"functionId": "forged", "type": "awslambda", "provider":{"arn": "arn:aws:lambda:us-east-1:000000000000:function:team-b_other-eg", "region": "us-east-1", "awsAccessKeyId": "`+id+`", "awsSecretAccessKey": "`+strings.Repeat("x", 40)+`"}}`))
	if code, b := cfg("GET", "/v1/spaces/default/functions/keyed", ""); code != 200 || strings.Contains(b, secret) ||
		!strings.Contains(b, `"awsSecretAccessKey":"*****"`) || !strings.Contains(b, `"type":"awslambda"`) {
		t.Fatalf("a function's secret shown back: %d %s", code, b)
	}
	if _, b := cfg("GET", "/v1/spaces/default/functions", ""); strings.Contains(b, secret) {
		t.Fatalf("a function's secret listed: %s", b)
	}
	// Updated with the body GET showed, the secret is kept (the keyed
	// calls below pass).
	_, shown := cfg("GET", "/v1/spaces/default/functions/keyed", "")
	must(cfg("PUT", "/v1/spaces/default/functions/keyed", strings.Replace(shown, `"functionId"`, `"metadata":{"v":"2"},"functionId"`, 1)))
	must(cfg("POST", "/v1/spaces/default/eventtypes", `{"name":"job.done"}`))
	must(cfg("POST", "/v1/spaces/default/eventtypes", `{"name":"http.request"}`))
	for _, sub := range []string{
		`{"type":"sync","eventType":"http.request","functionId":"hello","path":"/hello","method":"POST"}`,
		`{"type":"sync","eventType":"http.request","functionId":"keyed","path":"/keyed","method":"POST"}`,
		`{"type":"sync","eventType":"http.request","functionId":"pinned","path":"/pinned","method":"POST"}`,
		`{"type":"sync","eventType":"http.request","functionId":"nokey","path":"/nokey","method":"POST"}`,
		`{"type":"sync","eventType":"http.request","functionId":"forged","path":"/forged","method":"POST"}`,
		`{"type":"async","eventType":"job.done","functionId":"hello","path":"/jobs"}`,
		`{"type":"async","eventType":"job.done","functionId":"keyed","path":"/jobs"}`,
	} {
		must(cfg("POST", "/v1/spaces/default/subscriptions", sub))
	}
	post := func(path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", n.Events+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Sync: the handler's answer; its ARN says which function ran.
	if code, b := post("/hello", `{"x":1}`); code != 200 || !strings.Contains(b, `"arn":"arn:aws:lambda:us-east-1:000000000000:function:hello-eg"`) {
		t.Fatalf("sync, resolved in the space's namespace: %d %s", code, b)
	}
	if code, b := post("/pinned", `{"x":5}`); code != 200 || !strings.Contains(b, `"arn":"arn:aws:lambda:us-east-1:000000000000:function:hello-eg:1"`) {
		t.Fatalf("sync, a version's ARN: %d %s", code, b)
	}
	if code, b := post("/keyed", `{"x":2}`); code != 200 || !strings.Contains(b, `:function:other-eg"`) {
		t.Fatalf("sync, signed with a key of team-b: %d %s", code, b)
	}
	if code, b := post("/nokey", `{"x":3}`); code != 500 {
		t.Fatalf("space default reached team-b without a key: %d %s", code, b)
	}
	if code, b := post("/forged", `{"x":4}`); code != 500 {
		t.Fatalf("a wrong secret: %d %s", code, b)
	}
	// Async: both run.
	if code, b := post("/jobs", `{"job":1}`, "Ce-Specversion", "1.0", "Ce-Id", "j-1", "Ce-Source", "/ci", "Ce-Type", "job.done"); code != 202 {
		t.Fatalf("async emit: %d %s", code, b)
	}
	for _, fn := range [][]string{{"hello-eg"}, {"other-eg", "-n", "team-b"}} {
		waitUntil(t, fn[0]+" to run the async event", 20*time.Second, func() bool {
			logs, _, _ := n.cli(append([]string{"logs"}, fn...)...)
			return strings.Count(logs, "handled ") >= 2
		})
	}
	if logs := n.mustCLI("logs", "other-eg", "-n", "team-b"); strings.Count(logs, "handled ") != 2 {
		t.Fatalf("team-b's function ran %d times, want 2 (the keyed sync and async calls):\n%s", strings.Count(logs, "handled "), logs)
	}
}

// TestEventGatewayLambdaEndpoint: with --lambda-endpoint, an awslambda
// function is invoked over the network at that Lambda API (here another
// nimbus), signed with the registration's keys: sync and async, and a
// function of this nimbus's own account is not resolved locally.
func TestEventGatewayLambdaEndpoint(t *testing.T) {
	remote := start(t, dataDir(t))
	deployLambda(t, remote, "far-fn")
	id, secret := newKey(t, remote, "default")
	n := start(t, dataDir(t), "--lambda-endpoint", remote.URL)
	deployLambda(t, n, "far-fn") // a local namesake, which must not run
	token := strings.TrimSpace(readFile(t, n.dataDir+"/admin-token"))
	cfg := func(method, path, body string) {
		t.Helper()
		code, b, _ := n.invoke(method, path, body, "Authorization", "Bearer "+token, "Content-Type", "application/json")
		if code != 201 {
			t.Fatalf("%s %s: %d %s", method, path, code, b)
		}
	}
	cfg("POST", "/v1/spaces/default/functions", `{"functionId":"far","type":"awslambda","provider":{"arn":"arn:aws:lambda:us-east-1:000000000000:function:far-fn","region":"us-east-1","awsAccessKeyId":"`+id+`","awsSecretAccessKey":"`+secret+`"}}`)
	cfg("POST", "/v1/spaces/default/eventtypes", `{"name":"http.request"}`)
	cfg("POST", "/v1/spaces/default/eventtypes", `{"name":"far.job"}`)
	cfg("POST", "/v1/spaces/default/subscriptions", `{"type":"sync","eventType":"http.request","functionId":"far","path":"/far","method":"POST"}`)
	cfg("POST", "/v1/spaces/default/subscriptions", `{"type":"async","eventType":"far.job","functionId":"far","path":"/jobs"}`)
	resp, err := http.Post(n.Events+"/far", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"arn":"arn:aws:lambda:us-east-1:000000000000:function:far-fn"`) {
		t.Fatalf("sync through the remote Lambda API: %d %s", resp.StatusCode, b)
	}
	req, _ := http.NewRequest("POST", n.Events+"/jobs", strings.NewReader(`{"job":1}`))
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "far-1", "Ce-Source": "/ci", "Ce-Type": "far.job", "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 202 {
		t.Fatalf("async emit: %v %v", err, resp)
	}
	resp.Body.Close()
	waitUntil(t, "the remote function to run the async event", 20*time.Second, func() bool {
		logs, _, _ := remote.cli("logs", "far-fn")
		return strings.Count(logs, "handled ") >= 2
	})
	if logs := n.mustCLI("logs", "far-fn"); strings.Contains(logs, "handled") {
		t.Fatalf("the local namesake ran:\n%s", logs)
	}
}
