package apiserver

import (
	"errors"
	"net/http"

	"nimbus/internal/queue"
)

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFilter(w, r)
	if !ok {
		return
	}
	list, err := s.opts.Queue.DeadLetters(r.Context(), ns, r.URL.Query().Get("function"))
	if err != nil {
		writeError(w, errUnavailable, "the dead-letter store is unavailable; retry shortly")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deadLetters": list})
}

func (s *Server) deadLetter(w http.ResponseWriter, r *http.Request) (queue.DeadLetter, bool) {
	d, err := s.opts.Queue.GetDeadLetter(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, errDeadLetterNotFound, "no dead letter with call id "+r.PathValue("id"))
		return d, false
	case err != nil:
		writeError(w, errUnavailable, "the dead-letter store is unavailable; retry shortly")
		return d, false
	}
	return d, true
}

func (s *Server) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	if d, ok := s.deadLetter(w, r); ok {
		writeJSON(w, http.StatusOK, d)
	}
}

// redriveDeadLetter queues the invocation again, with fresh attempts and a
// fresh event age, then removes the dead letter.
func (s *Server) redriveDeadLetter(w http.ResponseWriter, r *http.Request) {
	d, err := s.opts.Queue.Redrive(r.Context(), r.PathValue("id"), nowUTC())
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, errDeadLetterNotFound, "no dead letter with call id "+r.PathValue("id"))
		return
	case err != nil:
		writeError(w, errUnavailable, "the queue did not take the invocation; retry")
		return
	}
	w.Header().Set("X-Call-Id", d.CallID)
	writeJSON(w, http.StatusAccepted, map[string]string{"callId": d.CallID})
}

func (s *Server) purgeDeadLetter(w http.ResponseWriter, r *http.Request) {
	err := s.opts.Queue.DeleteDeadLetter(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, errDeadLetterNotFound, "no dead letter with call id "+r.PathValue("id"))
	case err != nil:
		writeError(w, errUnavailable, "the dead-letter store is unavailable; retry shortly")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
