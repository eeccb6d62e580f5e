package lambdaapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"nimbus/internal/store"
	"nimbus/internal/versions"
)

// AliasConfiguration is Lambda's description of an alias.
type AliasConfiguration struct {
	AliasArn        string `json:"AliasArn"`
	Name            string `json:"Name"`
	FunctionVersion string `json:"FunctionVersion"`
	Description     string `json:"Description,omitempty"`
	RevisionId      string `json:"RevisionId"`
}

func aliasOf(key store.AccessKey, ns, name string, a store.Alias) AliasConfiguration {
	return AliasConfiguration{AliasArn: ARN(key, ns, name) + ":" + a.Name, Name: a.Name, FunctionVersion: strconv.Itoa(a.Version),
		Description: a.Description, RevisionId: strconv.FormatInt(a.Updated.UnixNano(), 36)}
}

// versionError maps the versions package's errors to Lambda's.
func versionError(err error) *apiErr {
	switch {
	case errors.Is(err, versions.ErrNotFound):
		return &apiErr{http.StatusNotFound, "ResourceNotFoundException", err.Error()}
	case errors.Is(err, versions.ErrExists), errors.Is(err, versions.ErrInUse):
		return &apiErr{http.StatusConflict, "ResourceConflictException", err.Error()}
	case errors.Is(err, versions.ErrInvalid):
		return &apiErr{http.StatusBadRequest, "InvalidParameterValueException", err.Error()}
	}
	return deployError(err, "")
}

// qualified is the nimbus function a qualifier of name runs, and the
// version it is ($LATEST or a number).
func (h *Handler) qualified(r *http.Request, c *caller, ns, name, qualifier string) (target, version string, aerr *apiErr) {
	if qualifier == "" || qualifier == versions.Latest {
		return name, versions.Latest, nil
	}
	if h.o.Versions == nil {
		return "", "", &apiErr{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s:%s", ARN(c.key, ns, name), qualifier)}
	}
	target, version, err := h.o.Versions.Resolve(r.Context(), ns, name, qualifier)
	if err != nil {
		if errors.Is(err, versions.ErrNotFound) {
			return "", "", &apiErr{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s:%s", ARN(c.key, ns, name), qualifier)}
		}
		return "", "", versionError(err)
	}
	return target, version, nil
}

// named is the function (unqualified) a versions or aliases request names.
func (h *Handler) named(w http.ResponseWriter, r *http.Request) (c *caller, ns, name string, ok bool) {
	c = callerOf(r)
	ns, name, qualifier, aerr := resolve(c.key, r.PathValue("name"))
	if aerr == nil && qualifier != "" {
		aerr = &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "name the function without a qualifier"}
	}
	if aerr != nil {
		writeErr(w, aerr)
		return nil, "", "", false
	}
	return c, ns, name, true
}

// publishVersion is PublishVersion: the function as it is now becomes a
// version (or the newest one, if it is the function as it is now).
func (h *Handler) publishVersion(w http.ResponseWriter, r *http.Request) {
	c, ns, name, ok := h.named(w, r)
	if !ok {
		return
	}
	var req struct{ Description, CodeSha256, RevisionId string }
	if len(c.body) > 0 {
		if err := json.Unmarshal(c.body, &req); err != nil {
			writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "the body is not PublishVersion's JSON: " + err.Error()})
			return
		}
	}
	if req.CodeSha256 != "" {
		rec, err := h.o.Store.Get(r.Context(), ns, name)
		if err != nil {
			writeErr(w, deployError(err, ARN(c.key, ns, name)))
			return
		}
		if got := rec.Function.Annotations[annCodeSha256]; got != req.CodeSha256 {
			writeErr(w, &apiErr{http.StatusPreconditionFailed, "PreconditionFailedException",
				fmt.Sprintf("CodeSha256 %s is not the function's code (%s): it changed since you read it", req.CodeSha256, got)})
			return
		}
	}
	// A version's description is its own: it does not make the function
	// differ from its newest version.
	rec, _, err := h.o.Versions.Publish(r.Context(), ns, name, map[string]string{annDescription: req.Description})
	if err != nil {
		writeErr(w, versionError(err))
		return
	}
	h.o.Logger.Info("lambda version published", "function", rec.Function.Key(), "key", c.key.ID)
	writeJSON(w, http.StatusCreated, configOf(c.key, rec))
}

// listVersions is ListVersionsByFunction: $LATEST, then each version.
func (h *Handler) listVersions(w http.ResponseWriter, r *http.Request) {
	c, ns, name, ok := h.named(w, r)
	if !ok {
		return
	}
	latest, err := h.o.Store.Get(r.Context(), ns, name)
	if err != nil {
		writeErr(w, deployError(err, ARN(c.key, ns, name)))
		return
	}
	list, _, err := h.o.Versions.List(r.Context(), ns, name)
	if err != nil {
		writeErr(w, versionError(err))
		return
	}
	out := []FunctionConfiguration{configOf(c.key, latest)}
	for _, rec := range list {
		out = append(out, configOf(c.key, rec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"Versions": out})
}

// aliasRequest is CreateAlias's and UpdateAlias's body.
type aliasRequest struct {
	Name            string
	FunctionVersion string
	Description     *string
	RoutingConfig   *struct {
		AdditionalVersionWeights map[string]float64
	}
}

func (h *Handler) setAlias(w http.ResponseWriter, r *http.Request, create bool) {
	c, ns, name, ok := h.named(w, r)
	if !ok {
		return
	}
	var req aliasRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "the body is not an alias's JSON: " + err.Error()})
		return
	}
	if req.RoutingConfig != nil && len(req.RoutingConfig.AdditionalVersionWeights) > 0 {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "RoutingConfig: weighted aliases are not served here; point the alias at one version"})
		return
	}
	alias := req.Name
	if !create {
		alias = r.PathValue("alias")
	}
	var change versions.AliasChange
	switch v := req.FunctionVersion; {
	case v == "" && !create:
	case v == versions.Latest:
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "FunctionVersion $LATEST: an alias here names a published version (publish one with PublishVersion)"})
		return
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("FunctionVersion %q is not a version number", v)})
			return
		}
		change.Version = n
	}
	change.Description = req.Description
	a, err := h.o.Versions.SetAlias(r.Context(), ns, name, alias, change, create)
	if err != nil {
		writeErr(w, versionError(err))
		return
	}
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	writeJSON(w, status, aliasOf(c.key, ns, name, a))
}

func (h *Handler) createAlias(w http.ResponseWriter, r *http.Request) { h.setAlias(w, r, true) }
func (h *Handler) updateAlias(w http.ResponseWriter, r *http.Request) { h.setAlias(w, r, false) }

func (h *Handler) getAlias(w http.ResponseWriter, r *http.Request) {
	c, ns, name, ok := h.named(w, r)
	if !ok {
		return
	}
	a, err := h.o.Versions.Alias(r.Context(), ns, name, r.PathValue("alias"))
	if err != nil {
		writeErr(w, versionError(err))
		return
	}
	writeJSON(w, http.StatusOK, aliasOf(c.key, ns, name, a))
}

func (h *Handler) listAliases(w http.ResponseWriter, r *http.Request) {
	c, ns, name, ok := h.named(w, r)
	if !ok {
		return
	}
	_, info, err := h.o.Versions.List(r.Context(), ns, name)
	if err != nil {
		writeErr(w, versionError(err))
		return
	}
	only := r.URL.Query().Get("FunctionVersion")
	out := []AliasConfiguration{}
	for _, a := range info.Aliases {
		if only == "" || only == strconv.Itoa(a.Version) {
			out = append(out, aliasOf(c.key, ns, name, a))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"Aliases": out})
}

func (h *Handler) deleteAlias(w http.ResponseWriter, r *http.Request) {
	_, ns, name, ok := h.named(w, r)
	if !ok {
		return
	}
	if err := h.o.Versions.DeleteAlias(r.Context(), ns, name, r.PathValue("alias")); err != nil {
		writeErr(w, versionError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
