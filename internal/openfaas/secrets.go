package openfaas

import (
	"errors"
	"net/http"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

// Secret is faas-provider's types.Secret. RawValue ([]byte) travels as base64
// in JSON. Values are accepted, never returned.
type Secret struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Value     string `json:"value,omitempty"`
	RawValue  []byte `json:"rawValue,omitempty"`
}

func (h *Handler) listSecrets(w http.ResponseWriter, r *http.Request) {
	ns := namespaceOf(r.URL.Query().Get("namespace"))
	list, err := h.opts.Secrets.ListSecrets(r.Context(), ns)
	if err != nil {
		storeError(w, err)
		return
	}
	out := make([]Secret, 0, len(list))
	for _, s := range list {
		out = append(out, Secret{Name: s.Name, Namespace: ofNamespace(s.Namespace)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) createSecret(w http.ResponseWriter, r *http.Request) { h.putSecret(w, r, true) }
func (h *Handler) updateSecret(w http.ResponseWriter, r *http.Request) { h.putSecret(w, r, false) }

func (h *Handler) putSecret(w http.ResponseWriter, r *http.Request, create bool) {
	var s Secret
	if err := decode(r, &s); err != nil {
		badBody(w, err)
		return
	}
	ns := namespaceOf(s.Namespace)
	if err := function.ValidateName("name", s.Name); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	value := []byte(s.Value)
	if len(s.RawValue) > 0 {
		value = s.RawValue
	}
	if len(value) == 0 {
		http.Error(w, "value or rawValue is required", http.StatusBadRequest)
		return
	}
	if err := h.opts.Secrets.PutSecret(r.Context(), ns, s.Name, value, create); err != nil {
		if errors.Is(err, store.ErrExists) {
			http.Error(w, "secret already exists: update it with PUT /system/secrets", http.StatusConflict)
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "secret not found", http.StatusNotFound)
			return
		}
		storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted) // as faas-netes, for create and update
}

func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request) {
	var s Secret
	if err := decode(r, &s); err != nil {
		badBody(w, err)
		return
	}
	if err := function.ValidateName("name", s.Name); err != nil {
		http.Error(w, err.Error()+" (the secret to delete)", http.StatusBadRequest)
		return
	}
	ns := s.Namespace
	if ns == "" {
		ns = r.URL.Query().Get("namespace")
	}
	if err := h.opts.Secrets.DeleteSecret(r.Context(), namespaceOf(ns), s.Name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "secret not found", http.StatusNotFound)
			return
		}
		storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted) // faas-cli takes 200 or 202 only
}
