package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub", ".git"), 0o755)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "data.txt"), []byte("data"), 0o600)
	os.WriteFile(filepath.Join(src, "sub", ".git", "HEAD"), []byte("x"), 0o644)
	var a, b bytes.Buffer
	st, err := Pack(src, &a)
	if err != nil || st.Files != 2 {
		t.Fatalf("Pack: %+v %v", st, err)
	}
	Pack(src, &b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
	dst := t.TempDir()
	if sum, err := Check(bytes.NewReader(a.Bytes()), Limits{}); err != nil || sum.Files != 3 || sum.Bytes != 22 {
		t.Fatalf("Check: %+v %v", sum, err)
	}
	if _, err := Unpack(bytes.NewReader(a.Bytes()), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("executable bit lost: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub", "data.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("a data file should be 0640 (its owner, the function's user, reads it): %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "sub", ".git")); !os.IsNotExist(err) {
		t.Fatal(".git was packed")
	}
}

func TestPackRefusesSymlinks(t *testing.T) {
	src := t.TempDir()
	os.Symlink("/etc/passwd", filepath.Join(src, "link"))
	if _, err := Pack(src, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "link") {
		t.Fatalf("want an error naming the link, got %v", err)
	}
}

func tarOf(t *testing.T, hs ...*tar.Header) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hs {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestRefusals: what a package may not hold is refused by Check (at
// upload) and Unpack alike, as an *Error naming the entry, and Unpack
// writes nothing outside its directory.
func TestRefusals(t *testing.T) {
	cases := map[string][]*tar.Header{
		"parent":    {{Typeflag: tar.TypeReg, Name: "../evil", Size: 1, Mode: 0o644}},
		"deep":      {{Typeflag: tar.TypeReg, Name: "a/../../evil", Size: 1, Mode: 0o644}},
		"absolute":  {{Typeflag: tar.TypeReg, Name: "/tmp/evil", Size: 1, Mode: 0o644}},
		"symlink":   {{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc"}},
		"hardlink":  {{Typeflag: tar.TypeLink, Name: "l", Linkname: "../outside"}},
		"device":    {{Typeflag: tar.TypeChar, Name: "dev"}},
		"fifo":      {{Typeflag: tar.TypeFifo, Name: "pipe"}},
		"too many":  {{Typeflag: tar.TypeDir, Name: "a/"}, {Typeflag: tar.TypeDir, Name: "b/"}, {Typeflag: tar.TypeDir, Name: "c/"}},
		"too large": {{Typeflag: tar.TypeReg, Name: "big", Size: 200, Mode: 0o644}},
		"bytes sum": {{Typeflag: tar.TypeReg, Name: "a", Size: 60, Mode: 0o644}, {Typeflag: tar.TypeReg, Name: "b", Size: 60, Mode: 0o644}},
		// What Unpack could not make, refused by Check too.
		"twice":         {{Typeflag: tar.TypeReg, Name: "f", Size: 1, Mode: 0o644}, {Typeflag: tar.TypeReg, Name: "./f", Size: 1, Mode: 0o644}},
		"dot":           {{Typeflag: tar.TypeReg, Name: ".", Size: 1, Mode: 0o644}},
		"under a file":  {{Typeflag: tar.TypeReg, Name: "f", Size: 1, Mode: 0o644}, {Typeflag: tar.TypeReg, Name: "f/g", Size: 1, Mode: 0o644}},
		"file on a dir": {{Typeflag: tar.TypeReg, Name: "d/g", Size: 1, Mode: 0o644}, {Typeflag: tar.TypeReg, Name: "d", Size: 1, Mode: 0o644}},
		"dir on a file": {{Typeflag: tar.TypeReg, Name: "f", Size: 1, Mode: 0o644}, {Typeflag: tar.TypeDir, Name: "f/"}},
	}
	lim := Limits{MaxBytes: 100, MaxFiles: 2}
	for name, hs := range cases {
		data := tarOf(t, hs...)
		if _, err := Check(bytes.NewReader(data), lim); !IsRefused(err) {
			t.Errorf("%s: Check: want a refusal, got %v", name, err)
		}
		parent := t.TempDir()
		dst := filepath.Join(parent, "pkg")
		os.Mkdir(dst, 0o755)
		if _, err := Unpack(bytes.NewReader(data), dst, lim); !IsRefused(err) {
			t.Errorf("%s: Unpack: want a refusal, got %v", name, err)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 1 {
			t.Errorf("%s: something was written beside the package directory", name)
		}
	}
	for name, data := range map[string][]byte{"not gzip": []byte("not gzip"), "cut short": tarOf(t, &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 10, Mode: 0o644})[:30]} {
		if _, err := Check(bytes.NewReader(data), Limits{}); !IsRefused(err) {
			t.Errorf("%s: want a refusal, got %v", name, err)
		}
	}
}

// TestPackIgnoreFile: what .nimbusignore names stays out, a negation
// takes a path back, the last match decides, a pattern without / matches
// at any depth, a trailing / only directories; an ignored symlink is no
// error; a bad pattern is an error naming the line.
func TestPackIgnoreFile(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"index.js", "notes.log", "lib/deep.log", "node_modules/keep/dist/a.js", "node_modules/keep/deps/big.tgz",
		"node_modules/drop/x.js", "build", "cache/build/y"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(src, f), []byte("x"), 0o644)
	}
	os.MkdirAll(filepath.Join(src, "node_modules", ".bin"), 0o755)
	os.Symlink("../keep/dist/a.js", filepath.Join(src, "node_modules", ".bin", "keep"))
	os.WriteFile(filepath.Join(src, IgnoreFile), []byte("# vendored runtime only\nnode_modules/*\n!node_modules/keep\n/node_modules/keep/deps\n\n*.log\nbuild/\n"), 0o644)
	var buf bytes.Buffer
	if _, err := Pack(src, &buf); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := Unpack(bytes.NewReader(buf.Bytes()), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{"index.js": true, "notes.log": false, "lib/deep.log": false, "node_modules/keep/dist/a.js": true,
		"node_modules/keep/deps/big.tgz": false, "node_modules/drop/x.js": false, "build": true, "cache/build/y": false, IgnoreFile: true} {
		if _, err := os.Stat(filepath.Join(dst, f)); (err == nil) != want {
			t.Errorf("%s packed: %v, want %v", f, err == nil, want)
		}
	}
	os.WriteFile(filepath.Join(src, IgnoreFile), []byte("ok\n[z-a\n"), 0o644)
	if _, err := Pack(src, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a bad pattern: %v", err)
	}
}
