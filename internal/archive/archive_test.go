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
	if err := Unpack(bytes.NewReader(a.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("executable bit lost: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub", "data.txt")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("data file should be world-readable 0644: %v %v", fi, err)
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

func TestUnpackRefusesEscapes(t *testing.T) {
	cases := map[string]*tar.Header{
		"parent":   {Typeflag: tar.TypeReg, Name: "../evil", Size: 1, Mode: 0o644},
		"absolute": {Typeflag: tar.TypeReg, Name: "/tmp/evil", Size: 1, Mode: 0o644},
		"symlink":  {Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/etc"},
		"device":   {Typeflag: tar.TypeChar, Name: "dev"},
	}
	for name, h := range cases {
		dst := t.TempDir()
		if err := Unpack(bytes.NewReader(tarOf(t, h)), dst); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := Unpack(strings.NewReader("not gzip"), t.TempDir()); err == nil {
		t.Error("garbage accepted")
	}
}
