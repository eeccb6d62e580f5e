// Package ui serves nimbus's web UI under /ui/: a page, a script and a
// style sheet embedded in the binary, so that go build alone builds it (no
// JavaScript toolchain; nothing is generated). The page signs in with the
// admin token, keeps it in the tab's session storage and sends it as a
// bearer header to the same /v1 API the CLI uses: no cookie, so no
// cross-site request can act for the user. It loads nothing from anywhere
// but nimbus, which its Content-Security-Policy enforces.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

// Prefix is where the UI is served.
const Prefix = "/ui/"

//go:embed assets
var assets embed.FS

// Handler serves the UI's files under Prefix.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Only nimbus itself: scripts and styles from the files here,
		// requests to its API, images drawn by the page (blob/data URLs
		// for downloads and nothing else); never framed.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "+
			"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the UI's files are read with GET", http.StatusMethodNotAllowed)
			return
		}
		files.ServeHTTP(w, r)
	})
}
