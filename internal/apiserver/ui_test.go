package apiserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"nimbus/internal/apiserver"
	"nimbus/internal/gateway"
	"nimbus/internal/series"
	"nimbus/internal/ui"
)

// TestSeriesAndSummary: calls through the gateway show in the function's
// series and its five-minute summary, by status class.
func TestSeriesAndSummary(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	if code, b, _ := e.do(t, "PUT", "/v1/functions/echo", spec(digest, ""), true); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	waitInvoke(t, e, "/function/echo", "hi")
	waitInvoke(t, e, "/function/echo", "hi")
	if code, _, _ := e.do(t, "GET", "/function/echo/fail", nil, false); code != 500 {
		t.Fatalf("/fail: %d", code)
	}
	code, b, _ := e.do(t, "GET", "/v1/functions/echo/series", nil, true)
	var s struct {
		Step   float64        `json:"step"`
		Points []series.Point `json:"points"`
	}
	if err := json.Unmarshal(b, &s); code != 200 || err != nil {
		t.Fatalf("series: %d %s", code, b)
	}
	if s.Step != gateway.RecentStep.Seconds() || len(s.Points) != gateway.RecentSteps {
		t.Fatalf("series: step %g, %d points", s.Step, len(s.Points))
	}
	var ok, server, cold, ready int
	for _, p := range s.Points {
		ok, server, cold, ready = ok+p.OK, server+p.ServerErrors, cold+p.ColdStarts, max(ready, p.Ready)
	}
	last := s.Points[len(s.Points)-1]
	if ok != 2 || server != 1 || cold != 1 || ready != 1 || last.P99 <= 0 || last.P50 > last.P99 {
		t.Fatalf("series after 2 ok calls and a 500 from a cold start: ok %d, 5xx %d, cold %d, ready %d, last %+v", ok, server, cold, ready, last)
	}
	_, b, _ = e.do(t, "GET", "/v1/functions/echo", nil, true)
	var v apiserver.FunctionView
	json.Unmarshal(b, &v)
	if r := v.Status.Recent; r.Invocations != 3 || r.ServerErrors != 1 || r.ColdStarts != 1 || r.P50 <= 0 {
		t.Fatalf("summary: %+v", r)
	}
	if code, b, _ := e.do(t, "GET", "/v1/functions/nope/series", nil, true); code != 404 || decodeErr(t, b).Error.Code != "function_not_found" {
		t.Fatalf("series of an unknown function: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "GET", "/v1/functions/Bad..Name/series", nil, true); code != 400 || decodeErr(t, b).Error.Field != "name" {
		t.Fatalf("series of a bad name: %d %s", code, b)
	}
}

// TestUIServed: the UI's files are served with a policy that lets the page
// load nothing but nimbus; a browser asking for / goes to it, an API client
// gets a 404 that says where things are.
func TestUIServed(t *testing.T) {
	e := newEnvWith(t, func(o *apiserver.Options) { o.UI = ui.Handler() })
	get := func(path, accept string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, sb.String()
	}
	resp, body := get("/ui/", "")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="app.js"`) || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("/ui/: %d %v %.200s", resp.StatusCode, resp.Header, body)
	}
	for _, f := range []struct{ path, ctype string }{{"/ui/app.js", "text/javascript"}, {"/ui/app.css", "text/css"}} {
		resp, body := get(f.path, "")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), f.ctype) || len(body) < 100 {
			t.Errorf("%s: %d %q", f.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get("/ui/nope.js", ""); resp.StatusCode != 404 {
		t.Errorf("/ui/nope.js: %d", resp.StatusCode)
	}
	if resp, _ := get("/ui/../v1/info", ""); resp.StatusCode == 200 {
		t.Errorf("/ui/../v1/info answered without a token")
	}
	if resp, _ := get("/ui", ""); resp.StatusCode != 301 || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get("/", "text/html,application/xhtml+xml,*/*;q=0.8"); resp.StatusCode != 302 || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ from a browser: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get("/", "application/json")
	if resp.StatusCode != 404 || !strings.Contains(body, "/ui/") || !strings.Contains(body, `"route_not_found"`) {
		t.Errorf("/ from an API client: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST /ui/: %v %v", resp.StatusCode, err)
	}
}

// TestRevisionsRoute: a function's stored revisions, newest first.
func TestRevisionsRoute(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	for _, v := range []string{"1", "2"} {
		if code, b, _ := e.do(t, "PUT", "/v1/functions/rev", spec(digest, `,"env":{"V":"`+v+`"}`), true); code != 201 && code != 200 {
			t.Fatalf("deploy %s: %d %s", v, code, b)
		}
	}
	code, b, _ := e.do(t, "GET", "/v1/functions/rev/revisions", nil, true)
	var r struct {
		Revisions []struct {
			Revision uint64
			Function struct{ Env map[string]string }
		}
	}
	if err := json.Unmarshal(b, &r); code != 200 || err != nil || len(r.Revisions) != 2 {
		t.Fatalf("revisions: %d %s", code, b)
	}
	if r.Revisions[0].Function.Env["V"] != "2" || r.Revisions[1].Function.Env["V"] != "1" || r.Revisions[0].Revision <= r.Revisions[1].Revision {
		t.Fatalf("not newest first: %s", b)
	}
	if code, b, _ := e.do(t, "GET", "/v1/functions/nope/revisions", nil, true); code != 404 || decodeErr(t, b).Error.Code != "function_not_found" {
		t.Fatalf("revisions of an unknown function: %d %s", code, b)
	}
}
