package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The exchanges below are what the real faas-cli (openfaas/faas-cli, read
// from its source: proxy/*.go, commands/*.go and the go-sdk it vendors)
// sends for each everyday command, with the statuses it accepts as
// success and what it parses from the answer. Running faas-cli itself needs
// it built from its source, which no registry here serves; these requests
// are what it was seen to send, so a regression fails here.

// fcRequest is one request as faas-cli makes it.
type fcRequest struct {
	method, path, body string
	// ua is the User-Agent faas-cli's client stack sends: "faas-cli/dev"
	// (proxy.Client), "faas-cli/dev (openfaas; linux; amd64)" (invoke),
	// "openfaas-go-sdk" (namespace list), "" (Go's default: login, ready).
	ua   string
	auth bool // Authorization: Basic admin:TOKEN, as saved by faas-cli login
}

// fc sends a request as faas-cli does: Content-Type application/json only
// with a body (proxy/client.go), Go's transport adding Accept-Encoding gzip.
func (n *nimbus) fc(t *testing.T, token string, r fcRequest) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, _ := http.NewRequest(r.method, n.URL+r.path, body)
	if r.body != "" && !strings.HasPrefix(r.path, "/function/") && !strings.HasPrefix(r.path, "/async-function/") {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.ua != "" {
		req.Header.Set("User-Agent", r.ua)
	}
	if r.auth {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:"+token)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// accepts fails unless status is one faas-cli takes as success for what.
func accepts(t *testing.T, what string, status int, body string, ok ...int) {
	t.Helper()
	if !slices.Contains(ok, status) {
		t.Fatalf("%s: faas-cli accepts %v, nimbus answered %d %s", what, ok, status, body)
	}
}

// fcStatus is the part of faas-provider's FunctionStatus faas-cli reads,
// with its types: a wrong type fails faas-cli's json.Unmarshal.
type fcStatus struct {
	Name              string             `json:"name"`
	Image             string             `json:"image"`
	Namespace         string             `json:"namespace"`
	Labels            *map[string]string `json:"labels"`
	Annotations       *map[string]string `json:"annotations"`
	Limits            *struct{ Memory, CPU string }
	InvocationCount   float64   `json:"invocationCount"`
	Replicas          uint64    `json:"replicas"`
	AvailableReplicas uint64    `json:"availableReplicas"`
	CreatedAt         time.Time `json:"createdAt"`
}

func TestFaasCLIExchanges(t *testing.T) {
	needDocker(t)
	buildOFImage(t)
	data := dataDir(t)
	n := start(t, data)
	token := strings.TrimSpace(readFile(t, data+"/admin-token"))
	const ua = "faas-cli/dev"

	// login: GET /system/functions with basic auth and Go's User-Agent;
	// only 200 saves the credential (commands/login.go).
	code, body, _ := n.fc(t, token, fcRequest{method: "GET", path: "/system/functions", auth: true})
	accepts(t, "login", code, body, 200)
	if code, _, _ := n.fc(t, "wrong", fcRequest{method: "GET", path: "/system/functions", auth: true}); code != 401 {
		t.Fatalf("login with a wrong password: %d, want 401", code)
	}

	// deploy with flags: PUT first, POST only after exactly 404; 200 and
	// 202 succeed, 201 fails (proxy/deploy.go). labels and annotations are
	// always sent, {} when empty, and limits only when given.
	deploy := `{"service":"fc-echo","image":"` + ofImage + `","labels":{},"annotations":{},"limits":{"memory":"20Mi"}}`
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/functions", deploy, ua, true})
	accepts(t, "deploy, PUT of a new function (falls back to POST only on 404)", code, body, 404)
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/functions", deploy, ua, true})
	accepts(t, "deploy, POST", code, body, 200, 202)
	// deploy -f stack.yml with -n openfaas-fn: the namespace in the body,
	// environment, labels, annotations; labels "null" from the certifier's
	// older faas-cli.
	stack := `{"service":"fc-stack","image":"` + ofImage + `","namespace":"openfaas-fn","envVars":{"GREETING":"hi"},` +
		`"labels":{"team":"a"},"annotations":{"note":"x"}}`
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/functions", stack, ua, true})
	accepts(t, "deploy -f, PUT", code, body, 404)
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/functions", stack, ua, true})
	accepts(t, "deploy -f, POST", code, body, 200, 202)
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/functions", strings.Replace(stack, `"hi"`, `"hello"`, 1), ua, true})
	accepts(t, "deploy -f again (a rolling update)", code, body, 200, 202)
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/functions",
		`{"service":"fc-null","image":"` + ofImage + `","labels":null,"annotations":null}`, ua, true})
	accepts(t, "deploy with labels and annotations null", code, body, 200, 202)

	// ready: GET /healthz without credentials, then the function's status
	// until availableReplicas > 0 (commands/ready.go).
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/healthz"})
	accepts(t, "ready (gateway)", code, body, 200)
	var st fcStatus
	waitUntil(t, "fc-echo to be ready", 60*time.Second, func() bool {
		code, body, _ := n.fc(t, token, fcRequest{method: "GET", path: "/system/function/fc-echo?usage=1", ua: ua, auth: true})
		return code == 200 && json.Unmarshal([]byte(body), &st) == nil && st.AvailableReplicas > 0
	})

	// describe: the status (404 is "no such function"), then the list.
	// faas-provider's status always carries labels (with faas_function)
	// and annotations; limits come back as deployed.
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/function/fc-stack?namespace=openfaas-fn&usage=1", ua: ua, auth: true})
	accepts(t, "describe -n openfaas-fn", code, body, 200)
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Namespace != "openfaas-fn" || st.Labels == nil ||
		(*st.Labels)["faas_function"] != "fc-stack" || (*st.Labels)["team"] != "a" || st.Annotations == nil || (*st.Annotations)["note"] != "x" {
		t.Fatalf("describe: %v %s", err, body)
	}
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/function/fc-echo?usage=1", ua: ua, auth: true})
	st = fcStatus{}
	if json.Unmarshal([]byte(body), &st) != nil || st.Limits == nil || st.Limits.Memory != "20Mi" || st.Annotations == nil ||
		len(*st.Annotations) != 0 {
		t.Fatalf("a status without annotations, limits as deployed: %s", body)
	}
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/function/nope?usage=1", ua: ua, auth: true})
	accepts(t, "describe of a missing function", code, body, 404)

	// list (and -v): a JSON array of FunctionStatus; only 200.
	for _, path := range []string{"/system/functions", "/system/functions?namespace=openfaas-fn"} {
		code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: path, ua: ua, auth: true})
		accepts(t, "list "+path, code, body, 200)
		var list []fcStatus
		if err := json.Unmarshal([]byte(body), &list); err != nil || len(list) != 3 {
			t.Fatalf("list %s: %v %s", path, err, body)
		}
		for _, f := range list {
			if f.Namespace != "openfaas-fn" || f.Labels == nil || f.Annotations == nil || f.CreatedAt.IsZero() {
				t.Fatalf("list %s: %+v", path, f)
			}
		}
	}

	// invoke: /function/NAME.openfaas-fn when -n is not given (the go-sdk
	// fills it in), Content-Type text/plain, no credential; any 2xx.
	invokeUA := "faas-cli/dev (openfaas; linux; amd64)"
	for _, path := range []string{"/function/fc-echo.openfaas-fn", "/function/fc-echo.openfaas-fn?a=1&b=2"} {
		req := fcRequest{method: "POST", path: path, body: "hello", ua: invokeUA}
		code, body, hdr := n.fc(t, token, req)
		accepts(t, "invoke "+path, code, body, 200, 201, 202, 204)
		if body != "hello" || hdr.Get("X-Call-Id") == "" || !regexp.MustCompile(`^[0-9]{19}$`).MatchString(hdr.Get("X-Start-Time")) ||
			hdr.Get("X-Duration-Seconds") == "" {
			t.Fatalf("invoke %s: %q %v", path, body, hdr)
		}
	}
	code, body, _ = n.fc(t, token, fcRequest{method: "POST", path: "/async-function/fc-echo.openfaas-fn", body: "later", ua: invokeUA})
	accepts(t, "invoke --async", code, body, 202) // 202 prints "submitted asynchronously"

	// logs: GET /system/logs?follow=false&name=N&tail=-1 (faas-cli's
	// defaults with --tail=false); 200 and a stream of JSON objects.
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/logs?follow=false&name=fc-echo&tail=-1", ua: ua, auth: true})
	accepts(t, "logs", code, body, 200)
	dec := json.NewDecoder(strings.NewReader(body))
	lines := 0
	for dec.More() {
		var m struct {
			Name, Namespace, Instance, Text string
			Timestamp                       time.Time
		}
		if err := dec.Decode(&m); err != nil || m.Name != "fc-echo" || m.Namespace != "openfaas-fn" || m.Timestamp.IsZero() {
			t.Fatalf("log message %d: %v %+v", lines, err, m)
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("logs: no lines")
	}

	// secret create|list|update|remove (proxy/secret.go): create takes
	// 200/201/202 (409: exists); --from-file sends rawValue too; list
	// 200/202; update 200/202 (404: missing); remove 200/202 (404: missing,
	// anything else an error).
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/secrets", `{"name":"fc-secret","value":"v1"}`, ua, true})
	accepts(t, "secret create", code, body, 200, 201, 202)
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/secrets", `{"name":"fc-secret","value":"v1"}`, ua, true})
	accepts(t, "secret create again", code, body, 409)
	code, body, _ = n.fc(t, token, fcRequest{"POST", "/system/secrets", `{"name":"fc-bytes","namespace":"openfaas-fn","value":"bin\u0001data","rawValue":"YmluAWRhdGEK"}`, ua, true})
	accepts(t, "secret create --from-file", code, body, 200, 201, 202)
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/secrets", ua: ua, auth: true})
	accepts(t, "secret list", code, body, 200, 202)
	var secrets []struct{ Name, Namespace string }
	if err := json.Unmarshal([]byte(body), &secrets); err != nil || len(secrets) != 2 || secrets[0].Namespace != "openfaas-fn" ||
		strings.Contains(body, "v1") {
		t.Fatalf("secret list: %v %s", err, body)
	}
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/secrets", `{"name":"fc-secret","value":"v2"}`, ua, true})
	accepts(t, "secret update", code, body, 200, 202)
	code, body, _ = n.fc(t, token, fcRequest{"PUT", "/system/secrets", `{"name":"nope","value":"v2"}`, ua, true})
	accepts(t, "secret update of a missing one", code, body, 404)
	code, body, _ = n.fc(t, token, fcRequest{"DELETE", "/system/secrets", `{"name":"fc-secret"}`, ua, true})
	accepts(t, "secret remove", code, body, 200, 202)
	code, body, _ = n.fc(t, token, fcRequest{"DELETE", "/system/secrets", `{"name":"fc-secret"}`, ua, true})
	accepts(t, "secret remove again", code, body, 404)
	code, body, _ = n.fc(t, token, fcRequest{"DELETE", "/system/secrets", `{}`, ua, true})
	if code != 400 || !strings.Contains(body, "name") {
		t.Fatalf("secret remove of {}: want 400 naming the field, got %d %s", code, body)
	}

	// namespace list: the go-sdk's client, a JSON array of strings.
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/namespaces", ua: "openfaas-go-sdk", auth: true})
	var namespaces []string
	if code != 200 || json.Unmarshal([]byte(body), &namespaces) != nil || !slices.Equal(namespaces, []string{"openfaas-fn"}) {
		t.Fatalf("namespace list: %d %s", code, body)
	}

	// version: /system/info with provider, version and provider.version as
	// objects (faas-cli dereferences all three).
	code, body, _ = n.fc(t, token, fcRequest{method: "GET", path: "/system/info", ua: ua, auth: true})
	var info struct {
		Provider *struct {
			Name          string `json:"provider"`
			Orchestration string `json:"orchestration"`
			Version       *struct{ SHA, Release string }
		}
		Version *struct{ SHA, Release string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &info) != nil || info.Provider == nil || info.Provider.Version == nil ||
		info.Version == nil || info.Provider.Name == "" {
		t.Fatalf("version: %d %s", code, body)
	}

	// remove: DELETE with {"functionName"} (and the namespace in the
	// query or body); 200/201/202, 404 for a missing one.
	for _, r := range []fcRequest{
		{"DELETE", "/system/functions", `{"functionName":"fc-echo"}`, ua, true},
		{"DELETE", "/system/functions", `{"functionName":"fc-stack","namespace":"openfaas-fn"}`, ua, true},
		{"DELETE", "/system/functions?namespace=openfaas-fn", `{"functionName":"fc-null"}`, ua, true},
	} {
		code, body, _ = n.fc(t, token, r)
		accepts(t, "remove "+r.body, code, body, 200, 201, 202)
	}
	code, body, _ = n.fc(t, token, fcRequest{"DELETE", "/system/functions", `{"functionName":"fc-echo"}`, ua, true})
	accepts(t, "remove of a missing function", code, body, 404)
}
