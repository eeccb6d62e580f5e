package openfaas

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"nimbus/internal/store"
)

// LogEntry is faas-provider's logs.Message.
type LogEntry struct {
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	Instance  string    `json:"instance"`
	Timestamp time.Time `json:"timestamp"`
	Text      string    `json:"text"`
}

// logs streams a function's log lines as NDJSON, as faas-cli logs reads
// them: name (required), namespace, instance, tail (last N lines), follow,
// since (RFC 3339).
func (h *Handler) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		http.Error(w, "name is required", http.StatusBadRequest)
		return
	}
	ns := namespaceOf(q.Get("namespace"))
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, "since must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z", http.StatusBadRequest)
			return
		}
		since = t
	}
	tail := -1
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "tail must be a number of lines", http.StatusBadRequest)
			return
		}
		tail = n
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	instance := q.Get("instance")
	if _, err := h.opts.Store.Get(r.Context(), ns, name); err != nil {
		storeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(l store.LogLine) error {
		if instance != "" && l.Instance != instance {
			return nil
		}
		if err := enc.Encode(LogEntry{Name: l.Function, Namespace: ofNamespace(l.Namespace), Instance: l.Instance, Timestamp: l.Time, Text: l.Text}); err != nil {
			return err
		}
		if follow {
			return rc.Flush()
		}
		return nil
	}
	if tail >= 0 {
		// Keep the last tail lines of what is stored, then follow after them.
		var ring []store.LogLine
		h.opts.Logs.ReadLogs(r.Context(), ns, name, since, false, func(l store.LogLine) error {
			if instance != "" && l.Instance != instance {
				return nil
			}
			ring = append(ring, l)
			if len(ring) > tail {
				ring = ring[1:]
			}
			return nil
		})
		for _, l := range ring {
			if send(l) != nil {
				return
			}
		}
		if !follow {
			return
		}
		rc.Flush()
		if len(ring) > 0 {
			since = ring[len(ring)-1].Time.Add(time.Nanosecond)
		} else {
			since = time.Now()
		}
	}
	if follow {
		rc.Flush()
	}
	h.opts.Logs.ReadLogs(r.Context(), ns, name, since, follow, send)
}
