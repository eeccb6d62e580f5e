package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"testing"
)

func makeZip(t *testing.T, entries map[string]fs.FileMode) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, mode := range entries {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if mode.IsRegular() {
			io.WriteString(w, "content of "+name)
		}
	}
	zw.Close()
	return b.Bytes()
}

// TestFromZip: files keep their bits (a bootstrap stays executable), and
// what could leave the package or is not a file is refused.
func TestFromZip(t *testing.T) {
	tgz, err := FromZip(makeZip(t, map[string]fs.FileMode{"bootstrap": 0o755, "lib/data.txt": 0o644, "lib/": fs.ModeDir | 0o755}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(bytes.NewReader(tgz), Limits{}); err != nil {
		t.Fatalf("the converted package fails the checks: %v", err)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(tgz))
	tr := tar.NewReader(zr)
	got := map[string]int64{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h.Mode
		if h.Name == "bootstrap" {
			b, _ := io.ReadAll(tr)
			if string(b) != "content of bootstrap" {
				t.Fatalf("bootstrap holds %q", b)
			}
		}
	}
	if got["bootstrap"]&0o111 == 0 || got["lib/data.txt"] != 0o644 {
		t.Fatalf("modes: %v", got)
	}
	for name, entries := range map[string]map[string]fs.FileMode{
		"../escape":        {"../escape": 0o644},
		"/abs":             {"/abs": 0o644},
		"a/../../b":        {"a/../../b": 0o644},
		"a link":           {"link": fs.ModeSymlink | 0o777},
		"not a zip at all": nil,
	} {
		in := []byte("PK no zip")
		if entries != nil {
			in = makeZip(t, entries)
		}
		if _, err := FromZip(in); !IsRefused(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
