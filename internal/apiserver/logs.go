package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

// parseSince reads ?since= as a duration back from now ("10m") or a time
// (RFC 3339).
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since=%s: a duration must be positive", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("since=%q: give a duration such as 10m or a time such as 2026-01-02T15:04:05Z", v)
	}
	return t, nil
}

// functionLogs streams a function's log lines as NDJSON, one object per line.
// With follow=true it keeps the response open and sends lines as they come.
func (s *Server) functionLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	since, err := parseSince(q.Get("since"), time.Now())
	if err != nil {
		writeError(w, errBadRequest, err.Error())
		return
	}
	follow := false
	switch q.Get("follow") {
	case "", "false", "0":
	case "true", "1":
		follow = true
	default:
		writeError(w, errBadRequest, "follow must be true or false")
		return
	}
	if _, err := s.opts.Store.Get(r.Context(), ns, name); err != nil {
		writeStoreError(w, err, "function "+function.Key(ns, name))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher := http.NewResponseController(w)
	if follow {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	s.opts.Store.ReadLogs(r.Context(), ns, name, since, follow, func(l store.LogLine) error {
		if err := enc.Encode(l); err != nil {
			return err
		}
		if follow {
			return flusher.Flush()
		}
		return nil
	})
}
