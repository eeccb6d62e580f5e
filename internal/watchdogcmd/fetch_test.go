package watchdogcmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"nimbus/internal/archive"
)

func testPackage(t *testing.T) ([]byte, string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "handler"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.MkdirAll(filepath.Join(src, "lib"), 0o755)
	os.WriteFile(filepath.Join(src, "lib", "data.txt"), []byte("data"), 0o644)
	var b bytes.Buffer
	if _, err := archive.Pack(src, &b); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b.Bytes())
	return b.Bytes(), "sha256:" + hex.EncodeToString(h[:])
}

// fetchEnv points the environment at url for digest, unpacking into a
// new directory, and puts the working directory back after the test.
func fetchEnv(t *testing.T, url, digest string) string {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	t.Setenv(envPackage, digest)
	t.Setenv(envURL, url)
	t.Setenv(envToken, "tok")
	t.Setenv(envDir, dir)
	return dir
}

func TestFetchPackage(t *testing.T) {
	pkg, digest := testPackage(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first attempt meets a nimbus that is not ready.
		if calls.Add(1) == 1 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Path != "/v1/packages/"+digest {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write(pkg)
	}))
	defer srv.Close()
	dir := fetchEnv(t, srv.URL+"/v1/packages/"+digest, digest)
	got, err := fetchPackage(context.Background(), io.Discard)
	if err != nil || got != dir {
		t.Fatalf("fetch: %q %v", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "lib", "data.txt")); err != nil || string(b) != "data" {
		t.Fatalf("unpacked: %q %v", b, err)
	}
	if wd, _ := os.Getwd(); wd != dir {
		t.Errorf("working directory %s, want %s", wd, dir)
	}
	if os.Getenv(envToken) != "" || os.Getenv(envURL) != "" {
		t.Error("the token and URL stay in the environment the function inherits")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the package directory holds %d entries, want the package's 2 (no spool left)", len(entries))
	}
	if calls.Load() != 2 {
		t.Errorf("%d requests, want a retry after the 503", calls.Load())
	}
	// The container restarts in its pod: the directory holds the last
	// unpacking (and what the function wrote); it starts again.
	os.WriteFile(filepath.Join(dir, "written-by-the-function"), []byte("x"), 0o644)
	t.Setenv(envURL, srv.URL+"/v1/packages/"+digest)
	t.Setenv(envToken, "tok")
	if _, err := fetchPackage(context.Background(), io.Discard); err != nil {
		t.Fatalf("fetching again into the same directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("after a restart the directory holds %d entries, want the package's 2", len(entries))
	}
}

// Hostile or broken answers: a package whose bytes are not the digest's,
// a refusal (no retry: it will not pass), an archive that leaves its
// directory, a digest that is not one.
func TestFetchPackageRefuses(t *testing.T) {
	pkg, digest := testPackage(t)
	evil := func() []byte {
		var b bytes.Buffer
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "x"), []byte("x"), 0o644)
		archive.Pack(src, &b)
		return b.Bytes()
	}()
	defer func(m int64) { maxFetchBytes = m }(maxFetchBytes)
	maxFetchBytes = 1024
	var calls atomic.Int32
	var body []byte
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(status)
		w.Write(body)
	}))
	defer srv.Close()
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		digest string
		want   string
	}{
		{"other bytes", evil, 200, digest, "not " + digest},
		{"refused", []byte(`{"error":{"message":"wrong token"}}`), 401, digest, "401"},
		{"not found", nil, 404, digest, "404"},
		{"not a digest", pkg, 200, "sha256:../../etc", "want the package's digest"},
		{"endless", make([]byte, 4096), 200, digest, "over 1024 bytes"},
		{"not a package", []byte("plain text"), 200, func() string { h := sha256.Sum256([]byte("plain text")); return "sha256:" + hex.EncodeToString(h[:]) }(), "unpacking"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body, status = c.body, c.status
			calls.Store(0)
			dir := fetchEnv(t, srv.URL+"/v1/packages/x", c.digest)
			_, err := fetchPackage(context.Background(), io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one saying %q", err, c.want)
			}
			if calls.Load() > 1 {
				t.Errorf("%d requests: a refusal that will not pass was retried", calls.Load())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 && c.name != "not a package" {
				t.Errorf("a refused package left %d entries", len(entries))
			}
		})
	}
}
