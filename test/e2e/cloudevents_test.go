package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// TestCloudEventsSDKClient: cloudevents/sdk-go's own HTTP client sends to
// the built nimbus — binary and structured mode, to POST /events and to the
// events API — and each event reaches the subscribed function once, in the
// format its subscription chose (1.0 binary, 1.0 structured).
func TestCloudEventsSDKClient(t *testing.T) {
	n := start(t, dataDir(t))
	dir, record := ledgerFunction(t, "sink", "")
	n.mustCLI("deploy", dir)
	edir, srecord := ledgerFunction(t, "structured", "")
	n.mustCLI("deploy", edir)
	token := strings.TrimSpace(readFile(t, n.dataDir+"/admin-token"))
	for _, s := range []string{
		`/eventtypes {"name":"order.placed"}`,
		`/functions {"functionId":"sink","type":"nimbus","provider":{"function":"sink"}}`,
		`/functions {"functionId":"structured","type":"nimbus","provider":{"function":"structured"},"eventFormat":"ce-1.0-structured"}`,
		`/subscriptions {"type":"async","eventType":"order.placed","functionId":"sink","path":"/orders"}`,
		`/subscriptions {"type":"async","eventType":"order.placed","functionId":"structured","path":"/orders"}`,
	} {
		path, body, _ := strings.Cut(s, " ")
		code, b, _ := n.invoke("POST", "/v1/spaces/default"+path, body, "Authorization", "Bearer "+token, "Content-Type", "application/json")
		if code != 201 {
			t.Fatalf("%s: %d %s", s, code, b)
		}
	}
	send := func(target, id string, structured bool) {
		t.Helper()
		c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(target))
		if err != nil {
			t.Fatal(err)
		}
		ev := cloudevents.NewEvent()
		ev.SetID(id)
		ev.SetSource("/shop")
		ev.SetType("order.placed")
		ev.SetExtension("tenant", "t1")
		ev.SetData(cloudevents.ApplicationJSON, map[string]int{"order": 7})
		ctx := context.Background()
		if structured {
			ctx = cloudevents.WithEncodingStructured(ctx)
		}
		if res := c.Send(ctx, ev); !cloudevents.IsACK(res) {
			t.Fatalf("send %s to %s: %v", id, target, res)
		}
	}
	send(n.URL+"/events", "sdk-binary", false)
	send(n.URL+"/events", "sdk-structured", true)
	send(n.Events+"/orders", "sdk-events-api", false)
	// The nimbus function in binary mode: testfn records "ce TYPE ID ...".
	waitUntil(t, "the binary-mode deliveries", 15*time.Second, func() bool {
		r := readFile(t, record)
		return strings.Contains(r, "ce order.placed sdk-binary ") && strings.Contains(r, "ce order.placed sdk-structured ") &&
			strings.Contains(r, "ce order.placed sdk-events-api ")
	})
	if r := readFile(t, record); strings.Count(r, "ce order.placed sdk-binary ") != 1 {
		t.Fatalf("delivered more than once:\n%s", r)
	}
	// The one that chose structured mode got each event whole, as
	// application/cloudevents+json (testfn records "cejson TYPE ID 1.0").
	waitUntil(t, "the structured-mode deliveries", 15*time.Second, func() bool {
		r := readFile(t, srecord)
		return strings.Contains(r, "cejson order.placed sdk-binary 1.0") && strings.Contains(r, "cejson order.placed sdk-structured 1.0") &&
			strings.Contains(r, "cejson order.placed sdk-events-api 1.0")
	})
}
