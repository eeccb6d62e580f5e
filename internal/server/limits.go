package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/gateway"
	"nimbus/internal/reqbody"
)

// limitBodies gives every request body but an invocation's (which the
// gateway bounds by the function's timeout too) timeout to arrive: past it
// the read fails and the handler answers 408.
func limitBodies(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, gateway.Prefix) {
			reqbody.Limit(w, r, timeout)
		}
		next.ServeHTTP(w, r)
	})
}

// limitHeaders answers 431 when a request's headers exceed max bytes. The
// http.Server's MaxHeaderBytes does this while reading the first request of a
// connection, but a later request on a kept-alive connection can get past it,
// so the limit is checked again here, where it holds for every request.
func limitHeaders(next http.Handler, max int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(r.Method) + len(r.RequestURI) + len(r.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		if n > max {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
			w.Write([]byte("431 Request Header Fields Too Large: headers may total at most " + strconv.Itoa(max) + " bytes\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
