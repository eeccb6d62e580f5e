package apiserver

import (
	"errors"
	"net/http"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/store"
	"nimbus/internal/versions"
)

// VersionView is a published version as /v1/functions/NAME/versions
// shows it.
type VersionView struct {
	Version  int               `json:"version"`
	Name     string            `json:"name"` // the function that runs it
	Revision uint64            `json:"revision"`
	Created  time.Time         `json:"created"`
	Function function.Function `json:"function"`
}

// VersionsView is a function's versions and aliases.
type VersionsView struct {
	Versions []VersionView `json:"versions"`
	Aliases  []store.Alias `json:"aliases"`
}

// writeVersionError answers an error of the versions package.
func writeVersionError(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, versions.ErrNotFound):
		writeError(w, errVersionNotFound, err.Error())
	case errors.Is(err, versions.ErrInUse), errors.Is(err, versions.ErrExists):
		writeError(w, errVersionInUse, err.Error())
	case errors.Is(err, versions.ErrInvalid):
		writeError(w, errBadRequest, err.Error())
	default:
		writeStoreError(w, err, what)
	}
}

// versioned reads the function a /versions request names; it has
// answered when it reports false.
func (s *Server) versioned(w http.ResponseWriter, r *http.Request) (ns, name string, ok bool) {
	if ns, name, ok = target(w, r); !ok {
		return "", "", false
	}
	if s.opts.Versions == nil {
		writeError(w, errNoRoute, "this nimbus keeps no versions")
		return "", "", false
	}
	return ns, name, true
}

// writeFunctionVersionError answers an error about a function's versions:
// a missing function is function_not_found.
func writeFunctionVersionError(w http.ResponseWriter, err error, ns, name string) {
	if errors.Is(err, versions.ErrNotFound) {
		writeError(w, errNotFound, err.Error())
		return
	}
	writeVersionError(w, err, "function "+function.Key(ns, name))
}

func versionView(rec store.Record) VersionView {
	return VersionView{Version: rec.Function.Version, Name: rec.Function.Name, Revision: rec.Revision, Created: rec.Updated, Function: rec.Function}
}

// functionVersions lists a function's published versions, oldest first,
// and its aliases.
func (s *Server) functionVersions(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.versioned(w, r)
	if !ok {
		return
	}
	list, info, err := s.opts.Versions.List(r.Context(), ns, name)
	if err != nil {
		writeFunctionVersionError(w, err, ns, name)
		return
	}
	out := VersionsView{Versions: []VersionView{}, Aliases: info.Aliases}
	if out.Aliases == nil {
		out.Aliases = []store.Alias{}
	}
	for _, rec := range list {
		out.Versions = append(out.Versions, versionView(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

// publishVersion publishes the function as it is now as a version: 201
// with it, or 200 with the newest version when that is the function as it
// is now.
func (s *Server) publishVersion(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.versioned(w, r)
	if !ok {
		return
	}
	rec, created, err := s.opts.Versions.Publish(r.Context(), ns, name, nil)
	if err != nil {
		writeFunctionVersionError(w, err, ns, name)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.opts.Logger.Info("version published", "function", function.Key(ns, name), "version", rec.Function.Version)
	}
	writeJSON(w, status, versionView(rec))
}
