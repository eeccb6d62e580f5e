package apiserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"nimbus/internal/function"
	"nimbus/internal/reqbody"
	"nimbus/internal/store"
)

// maxSecretBytes bounds one secret's value.
const maxSecretBytes = 512 << 10

// secretBody is what PUT /v1/secrets/{name} takes: the value as text, or as
// base64 for bytes that are not text.
type secretBody struct {
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"valueBase64,omitempty"`
}

// bytes decodes a secret body.
func (b secretBody) bytes() ([]byte, error) {
	switch {
	case b.Value != nil && b.ValueBase64 != nil:
		return nil, errors.New("give value or valueBase64, not both")
	case b.Value != nil:
		return []byte(*b.Value), nil
	case b.ValueBase64 != nil:
		v, err := base64.StdEncoding.DecodeString(*b.ValueBase64)
		if err != nil {
			return nil, fmt.Errorf("valueBase64 is not base64: %v", err)
		}
		return v, nil
	}
	return nil, errors.New("value (text) or valueBase64 (bytes) is required")
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFilter(w, r)
	if !ok {
		return
	}
	list, err := s.opts.Store.ListSecrets(r.Context(), ns)
	if err != nil {
		writeStoreError(w, err, "secrets")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"secrets": list})
}

// putSecret creates or updates a secret; the value is never echoed.
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	var body secretBody
	dec := json.NewDecoder(io.LimitReader(r.Body, maxSecretBytes*2))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		if reqbody.IsTimeout(err) {
			writeBodyError(w, err, maxSecretBytes, "secret")
			return
		}
		writeError(w, errBadRequest, "the body must be {\"value\": \"...\"} or {\"valueBase64\": \"...\"}: "+err.Error())
		return
	}
	v, err := body.bytes()
	if err != nil {
		writeError(w, errBadRequest, err.Error())
		return
	}
	if len(v) > maxSecretBytes {
		writeError(w, errTooLarge, fmt.Sprintf("a secret may be at most %d bytes", maxSecretBytes))
		return
	}
	status := http.StatusOK
	err = s.opts.Store.PutSecret(r.Context(), ns, name, v, false)
	if errors.Is(err, store.ErrNotFound) {
		status = http.StatusCreated
		err = s.opts.Store.PutSecret(r.Context(), ns, name, v, true)
	}
	if err != nil {
		writeStoreError(w, err, "secret "+function.Key(ns, name))
		return
	}
	s.opts.Logger.Info("secret stored", "secret", function.Key(ns, name))
	writeJSON(w, status, store.SecretInfo{Namespace: ns, Name: name})
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	if err := s.opts.Store.DeleteSecret(r.Context(), ns, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, errSecretNotFound, "secret "+function.Key(ns, name)+" not found")
			return
		}
		writeStoreError(w, err, "secret "+function.Key(ns, name))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
