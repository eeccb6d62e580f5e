package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEventGatewaySDK drives the Serverless Event Gateway's own JavaScript
// SDK, from npm (test/e2e/egsdk: 0.11.0, and 0.3.0 with its Event header),
// through every call it documents against the built nimbus, then checks
// what reached the functions: a nimbus function in CloudEvents 1.0 binary
// mode, a function of type http in the Event Gateway's CE 0.1 envelope.
func TestEventGatewaySDK(t *testing.T) {
	need(t, "node")
	sdk := filepath.Join(repoRoot(), "test", "e2e", "egsdk")
	if _, err := os.Stat(filepath.Join(sdk, "node_modules", "eg-sdk-0.11")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must install the Event Gateway SDK (npm ci --prefix test/e2e/egsdk): %v", err)
		}
		t.Skip("the Event Gateway SDK is not installed: run npm ci --prefix test/e2e/egsdk")
	}
	// The function of type http is a nimbus function reached over
	// loopback, which the outbound guard refuses unless allowed.
	n := start(t, dataDir(t), "--allow-outbound", "127.0.0.1/32")
	dir, record := ledgerFunction(t, "greeter", "")
	n.mustCLI("deploy", dir)
	edir, _ := ledgerFunction(t, "echoer", "")
	n.mustCLI("deploy", edir)
	token := strings.TrimSpace(readFile(t, n.dataDir+"/admin-token"))

	run := func(script string, env ...string) {
		t.Helper()
		cmd := exec.Command("node", script)
		cmd.Dir = sdk
		cmd.Env = append(os.Environ(), append([]string{"EG_URL=" + n.Events, "EG_CONFIG_URL=" + n.URL, "EG_SPACE=default",
			"HTTP_FUNCTION_URL=" + n.URL + "/function/echoer/log"}, env...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("%s:\n%s", script, out)
		if err != nil || strings.Contains(string(out), "FAIL") || !strings.Contains(string(out), "ok ") {
			t.Fatalf("%s: %v", script, err)
		}
	}
	run("sdk-0.11.js", "EVENT_GATEWAY_ACCESS_KEY="+token)

	// The async emit reached both subscribers, each in its format.
	waitUntil(t, "the nimbus function's delivery", 15*time.Second, func() bool {
		return strings.Contains(readFile(t, record), "ce user.created sdk11-1 ")
	})
	waitUntil(t, "the type http function's delivery", 15*time.Second, func() bool {
		logs, _, _ := n.cli("logs", "echoer")
		return strings.Contains(logs, `"eventID":"sdk11-1"`) && strings.Contains(logs, `"cloudEventsVersion":"0.1"`) &&
			strings.Contains(logs, `"data":{"name":"ann"}`)
	})
	// A sync http.request to the type http function: the Event Gateway's
	// envelope, the path parameter in its data.
	resp, err := http.Get(n.Events + "/hello/ann")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("sync http.request to a type http function: %d", resp.StatusCode)
	}
	waitUntil(t, "the sync http.request in the function's logs", 10*time.Second, func() bool {
		logs, _, _ := n.cli("logs", "echoer")
		return strings.Contains(logs, `"eventType":"http.request"`) && strings.Contains(logs, `"params":{"name":"ann"}`)
	})

	run("sdk-0.3.js", "EVENT_GATEWAY_API_KEY="+token)
	waitUntil(t, "the 0.3.0 SDK's emit", 15*time.Second, func() bool {
		return strings.Contains(readFile(t, record), "ce order.placed ")
	})
}
