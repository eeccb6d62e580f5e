package ui

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestWeightAndNothingExternal: the whole UI is under 300 KB gzipped, and
// nothing in it points outside nimbus (the machine it runs on may have no
// internet, and the page must not call anyone else).
func TestWeightAndNothingExternal(t *testing.T) {
	total, files := 0, 0
	absolute := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, path)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		w.Write(b)
		w.Close()
		total += z.Len()
		files++
		for _, m := range absolute.FindAllString(string(b), -1) {
			if m == "http://www.w3.org" { // the SVG namespace, a name, not a request
				continue
			}
			t.Errorf("%s refers to %s, outside nimbus", path, m)
		}
		if strings.HasSuffix(path, ".js") && strings.Contains(string(b), "innerHTML") {
			t.Errorf("%s uses innerHTML: text from the API must go in as text", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files, %d bytes gzipped", files, total)
	if files < 3 || total > 300<<10 {
		t.Fatalf("%d files weigh %d bytes gzipped; the limit is 300 KiB", files, total)
	}
}

// TestOnlyReads: the handler itself answers anything but GET and HEAD with
// a 405 (whatever mux it is mounted on).
func TestOnlyReads(t *testing.T) {
	h := Handler()
	for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 405, "PUT": 405, "DELETE": 405} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/ui/", nil))
		if rec.Code != want {
			t.Errorf("%s /ui/: %d, want %d", method, rec.Code, want)
		}
	}
}
