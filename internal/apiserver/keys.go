package apiserver

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/reqbody"
	"nimbus/internal/store"
)

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	// Namespaces the key may act in; "*" is every one.
	Namespaces  []string `json:"namespaces"`
	Description string   `json:"description,omitempty"`
}

var keyID = regexp.MustCompile(`^AKIA[A-Z2-7]{16}$`)

// newAccessKey makes an id shaped as AWS's (AKIA and 16 base32
// characters) and a 40-character secret, from the system's randomness.
func newAccessKey() (id, secret string) {
	b := make([]byte, 10)
	rand.Read(b)
	s := make([]byte, 30)
	rand.Read(s)
	return "AKIA" + base32.StdEncoding.EncodeToString(b), base64.StdEncoding.EncodeToString(s)
}

// createKey makes an access key; its secret is in this answer only.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if reqbody.IsTimeout(err) {
			writeBodyError(w, err, 64<<10, "key request")
			return
		}
		writeError(w, errBadRequest, `the body must be {"namespaces": ["NAMESPACE" or "*"], "description": "..."}: `+err.Error())
		return
	}
	if len(req.Namespaces) == 0 {
		writeFieldError(w, &function.FieldError{Field: "namespaces", Msg: `is required: the namespaces the key may act in, or ["*"] for every one`})
		return
	}
	for i, ns := range req.Namespaces {
		if ns == "*" {
			continue
		}
		if err := function.ValidateName(fmt.Sprintf("namespaces[%d]", i), ns); err != nil {
			var fe *function.FieldError
			errors.As(err, &fe)
			writeFieldError(w, fe)
			return
		}
	}
	if len(req.Description) > 256 {
		writeFieldError(w, &function.FieldError{Field: "description", Msg: "is over 256 characters: shorten it"})
		return
	}
	id, secret := newAccessKey()
	k := store.AccessKey{ID: id, Secret: secret, Namespaces: req.Namespaces, Description: req.Description, Created: time.Now().UTC()}
	if err := s.opts.Store.CreateKey(r.Context(), k); err != nil {
		writeStoreError(w, err, "access key")
		return
	}
	s.opts.Logger.Info("access key created", "key", id, "namespaces", req.Namespaces)
	writeJSON(w, http.StatusCreated, k)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	list, err := s.opts.Store.ListKeys(r.Context())
	if err != nil {
		writeStoreError(w, err, "access keys")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": list})
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !keyID.MatchString(id) {
		writeFieldError(w, &function.FieldError{Field: "id", Msg: fmt.Sprintf("%q is not an access key id (AKIA and 16 letters or digits 2-7)", id)})
		return
	}
	if err := s.opts.Store.DeleteKey(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, errKeyNotFound, "access key "+id+" not found")
			return
		}
		writeStoreError(w, err, "access key "+id)
		return
	}
	s.opts.Logger.Info("access key deleted", "key", id)
	w.WriteHeader(http.StatusNoContent)
}
