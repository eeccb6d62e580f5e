package apiserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"nimbus/internal/apiserver"
	"nimbus/internal/versions"
)

// TestVersionsNative: publishing through /v1 (201, then 200 for an
// unchanged function), the list with aliases, versions kept out of the
// function list and immune to deploys, a version named by an alias kept
// from deletion, and deleting the function taking its versions.
func TestVersionsNative(t *testing.T) {
	e := newEnv(t)
	digest := e.upload(t)
	if code, b, _ := e.do(t, "PUT", "/v1/functions/echo", spec(digest, `,"env":{"A":"1"}`), true); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	code, b, _ := e.do(t, "POST", "/v1/functions/echo/versions", nil, true)
	var v apiserver.VersionView
	if json.Unmarshal(b, &v); code != 201 || v.Version != 1 || v.Name != "echo--v1" || v.Function.VersionOf != "echo" || v.Function.Env["A"] != "1" {
		t.Fatalf("publish: %d %s", code, b)
	}
	code, b, _ = e.do(t, "POST", "/v1/functions/echo/versions", nil, true)
	if json.Unmarshal(b, &v); code != 200 || v.Version != 1 {
		t.Fatalf("publish unchanged: %d %s", code, b)
	}
	// The version answers as its own function, as published.
	if code, b, _ := e.do(t, "PUT", "/v1/functions/echo", spec(digest, `,"env":{"A":"2"}`), true); code != 200 {
		t.Fatalf("update: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/function/echo--v1/env", nil, false); code != 200 || !strings.Contains(string(b), "A=1") {
		t.Fatalf("version 1 runs %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/function/echo/env", nil, false); code != 200 || !strings.Contains(string(b), "A=2") {
		t.Fatalf("$LATEST runs %d %s", code, b)
	}
	if _, err := e.versions.SetAlias(context.Background(), "default", "echo", "live", versions.AliasChange{Version: 1}, true); err != nil {
		t.Fatal(err)
	}
	code, b, _ = e.do(t, "GET", "/v1/functions/echo/versions", nil, true)
	var list apiserver.VersionsView
	if json.Unmarshal(b, &list); code != 200 || len(list.Versions) != 1 || len(list.Aliases) != 1 || list.Aliases[0].Name != "live" || list.Aliases[0].Version != 1 {
		t.Fatalf("versions: %d %s", code, b)
	}
	if _, b, _ := e.do(t, "GET", "/v1/functions", nil, true); strings.Contains(string(b), "echo--v1") {
		t.Fatalf("a version in the function list: %s", b)
	}
	if _, b, _ := e.do(t, "GET", "/system/functions", nil, true); strings.Contains(string(b), "echo--v1") {
		t.Fatalf("a version in OpenFaaS's function list: %s", b)
	}
	// A version is never deployed over, by name or by versionOf.
	for body, want := range map[string]string{
		"/v1/functions/echo--v1": `"field": "name"`,
		"/v1/functions/echo--v2": `"field": "versionOf"`,
	} {
		extra := ""
		if strings.HasSuffix(body, "--v2") {
			extra = `,"versionOf":"echo","version":2`
		}
		if code, b, _ := e.do(t, "PUT", body, spec(digest, extra), true); code/100 != 4 || !strings.Contains(string(b), want) {
			t.Errorf("PUT %s: %d %s, want a 4xx naming %s", body, code, b, want)
		}
	}
	if code, b, _ := e.do(t, "DELETE", "/v1/functions/echo--v1", nil, true); code != 409 || decodeErr(t, b).Error.Code != "version_in_use" {
		t.Fatalf("deleting a version an alias names: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "POST", "/v1/functions/nope/versions", nil, true); code != 404 || decodeErr(t, b).Error.Code != "function_not_found" {
		t.Fatalf("publishing no function: %d %s", code, b)
	}
	// Deleting the function takes its versions and aliases.
	if code, b, _ := e.do(t, "DELETE", "/v1/functions/echo", nil, true); code != 204 {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, _, _ := e.do(t, "GET", "/v1/functions/echo--v1", nil, true); code != 404 {
		t.Fatalf("the version outlived its function: %d", code)
	}
	if info, rev, _ := e.store.VersionInfo(context.Background(), "default", "echo"); rev != 0 || len(info.Aliases) != 0 {
		t.Fatalf("the aliases outlived their function: %+v", info)
	}
	// So does OpenFaaS's delete; and an aliased version is a 409 there.
	e.do(t, "PUT", "/v1/functions/of", spec(digest, ""), true)
	e.do(t, "POST", "/v1/functions/of/versions", nil, true)
	e.versions.SetAlias(context.Background(), "default", "of", "live", versions.AliasChange{Version: 1}, true)
	if code, b, _ := e.do(t, "DELETE", "/system/functions", strings.NewReader(`{"functionName":"of--v1"}`), true); code != 409 || !strings.Contains(string(b), "alias live") {
		t.Fatalf("OpenFaaS delete of an aliased version: %d %s", code, b)
	}
	if code, b, _ := e.do(t, "DELETE", "/system/functions", strings.NewReader(`{"functionName":"of"}`), true); code != 202 {
		t.Fatalf("OpenFaaS delete: %d %s", code, b)
	}
	if code, _, _ := e.do(t, "GET", "/v1/functions/of--v1", nil, true); code != 404 {
		t.Fatalf("a version outlived its function deleted through OpenFaaS: %d", code)
	}
}
