package apiserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"nimbus/internal/function"
	"nimbus/internal/reqbody"
	"nimbus/internal/trigger"
)

// triggerBody is what PUT /v1/triggers/{name} takes.
type triggerBody struct {
	Schedule    string `json:"schedule"`
	Function    string `json:"function"`
	Path        string `json:"path,omitempty"`
	Body        string `json:"body,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// putTrigger creates (201) or replaces (200) a trigger. A replaced trigger
// starts its schedule afresh from now.
func (s *Server) putTrigger(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	var b triggerBody
	dec := json.NewDecoder(io.LimitReader(r.Body, 2*trigger.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		if reqbody.IsTimeout(err) {
			writeBodyError(w, err, trigger.MaxBody, "trigger")
			return
		}
		writeError(w, errBadRequest, `the body must be {"schedule": "*/5 * * * *", "function": "NAME", "body": "..."}: `+err.Error())
		return
	}
	t := trigger.Trigger{Name: name, Namespace: ns, Schedule: b.Schedule, Function: b.Function, Path: b.Path,
		Body: b.Body, ContentType: b.ContentType, Created: nowUTC()}
	if err := t.Validate(); err != nil {
		var fe *function.FieldError
		if errors.As(err, &fe) {
			writeFieldError(w, fe)
			return
		}
		writeError(w, errBadRequest, err.Error())
		return
	}
	created, err := s.opts.Triggers.Put(r.Context(), t)
	if err != nil {
		writeError(w, errUnavailable, "the trigger store is unavailable; retry shortly")
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.opts.Logger.Info("trigger stored", "trigger", function.Key(ns, name), "schedule", t.Schedule, "function", t.Function)
	writeJSON(w, status, t)
}

func (s *Server) getTrigger(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	t, err := s.opts.Triggers.Get(r.Context(), ns, name)
	if !s.triggerError(w, err, ns, name) {
		writeJSON(w, http.StatusOK, t)
	}
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFilter(w, r)
	if !ok {
		return
	}
	list, err := s.opts.Triggers.List(r.Context(), ns)
	if err != nil {
		writeError(w, errUnavailable, "the trigger store is unavailable; retry shortly")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"triggers": list})
}

func (s *Server) deleteTrigger(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	if !s.triggerError(w, s.opts.Triggers.Delete(r.Context(), ns, name), ns, name) {
		s.opts.Logger.Info("trigger deleted", "trigger", function.Key(ns, name))
		w.WriteHeader(http.StatusNoContent)
	}
}

// triggerError writes err, if any, and reports whether it did.
func (s *Server) triggerError(w http.ResponseWriter, err error, ns, name string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, trigger.ErrNotFound):
		writeError(w, errTriggerNotFound, "no trigger "+function.Key(ns, name)+"; see 'nimbus trigger list'")
	default:
		writeError(w, errUnavailable, "the trigger store is unavailable; retry shortly")
	}
	return true
}
