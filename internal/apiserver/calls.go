package apiserver

import (
	"net/http"
	"strconv"

	"nimbus/internal/calls"
)

// CallIndex answers lookups of call records.
type CallIndex interface {
	Get(callID string) (calls.Record, bool)
	List(namespace, name string, limit int) []calls.Record
}

var _ CallIndex = (*calls.Index)(nil)

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.opts.Calls.Get(r.PathValue("id"))
	if !ok {
		writeError(w, errCallNotFound, "no record of call "+r.PathValue("id")+" (records are kept for a bounded time, and appear about a tenth of a second after a call ends)")
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// listCalls: ?function=&namespace=&limit= (default 100, at most 1000),
// most recent first.
func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFilter(w, r)
	if !ok {
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, errBadRequest, "limit must be a number from 1 to 1000")
			return
		}
		limit = n
	}
	fn := r.URL.Query().Get("function")
	if fn != "" && ns == "" {
		ns = "default"
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": s.opts.Calls.List(ns, fn, limit)})
}
