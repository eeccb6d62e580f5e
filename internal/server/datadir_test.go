package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminTokenFile: a malformed or weak token file is refused at start
// with the fix, and a fresh data dir gets a private 64-character token.
func TestAdminTokenFile(t *testing.T) {
	good := strings.Repeat("a1", 20)
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"symlink", func(dir string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			os.WriteFile(target, []byte(good), 0o600)
			os.Symlink(target, filepath.Join(dir, TokenFile))
		}, "symlink"},
		{"short", func(dir string) { os.WriteFile(filepath.Join(dir, TokenFile), []byte("hunter2\n"), 0o600) }, "under the 32"},
		{"nonprintable", func(dir string) {
			os.WriteFile(filepath.Join(dir, TokenFile), []byte(good+"\x00\x01"), 0o600)
		}, "not printable"},
		{"spaces", func(dir string) {
			os.WriteFile(filepath.Join(dir, TokenFile), []byte(good[:20]+" "+good[:20]), 0o600)
		}, "not printable"},
		{"directory", func(dir string) { os.Mkdir(filepath.Join(dir, TokenFile), 0o700) }, "not a regular file"},
		{"huge", func(dir string) {
			os.WriteFile(filepath.Join(dir, TokenFile), []byte(strings.Repeat("a", 5000)), 0o600)
		}, "over 4 KiB"},
	} {
		dir := t.TempDir()
		tc.setup(dir)
		_, _, err := adminToken(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "delete it") {
			t.Errorf("%s: want an error saying %q and the fix, got %v", tc.name, tc.want, err)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, TokenFile), []byte(good+"\n"), 0o644)
	tok, created, err := adminToken(dir)
	if err != nil || tok != good || created {
		t.Fatalf("a good token file: %q %v %v", tok, created, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, TokenFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode left at %v", fi.Mode().Perm())
	}
	dir = t.TempDir()
	tok, created, err = adminToken(dir)
	fi, _ := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || !created || len(tok) != 64 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a new token: %q %v %v %v", tok, created, err, fi.Mode())
	}
	if again, created, _ := adminToken(dir); again != tok || created {
		t.Fatal("the token changed on the second start")
	}
}

// --admin-token-file: a mounted Secret (a symlink into its data, which is
// followed), checked as the data dir's token is; what is wrong is named.
func TestTokenFromFile(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("ab", 20)
	os.MkdirAll(filepath.Join(dir, "..data"), 0o755)
	os.WriteFile(filepath.Join(dir, "..data", "token"), []byte(good+"\n"), 0o440)
	os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token"))
	if got, err := tokenFromFile(filepath.Join(dir, "token")); err != nil || got != good {
		t.Fatalf("a Secret's token through its symlink: %q %v", got, err)
	}
	for name, c := range map[string]struct{ content, want string }{
		"short":  {"abc\n", "under the 32"},
		"binary": {good + "\x00\n", "not printable ASCII"},
		"huge":   {strings.Repeat("a", 5000), "over 4 KiB"},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(c.content), 0o600)
		if _, err := tokenFromFile(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	if _, err := tokenFromFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--admin-token-file") {
		t.Errorf("a missing file: %v", err)
	}
}
