// Package openfaas serves the OpenFaaS gateway API (/system/*) on nimbus, wire
// compatible with OpenFaaS's published spec and faas-provider's types, so
// that faas-cli, stack.yml files and the OpenFaaS Go SDK work unchanged. It is
// an adapter: it translates requests and answers, and deploys through the
// same path as the native API.
//
// /system/* takes HTTP basic auth with user "admin" and the admin token as
// password (what `faas-cli login` sends), or the native bearer token. Errors
// are plain text, as OpenFaaS returns them.
package openfaas

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sort"

	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/store"
)

// Deploy stores a function after every check the native API makes; mode is
// one of the apiserver's DeployMode values.
type Deploy func(ctx context.Context, fn function.Function, createOnly, updateOnly bool) (store.Record, error)

// Options wire the adapter to nimbus.
type Options struct {
	Store   store.Functions
	Secrets store.Secrets
	Logs    store.Logs
	Status  func(namespace, name string) (gateway.Status, []gateway.InstanceStatus, bool)
	// Scale sets a function's replicas without a new revision (a floor the
	// autoscaler decides above) and returns the desired count; Replicas
	// reports the desired count. False: the function is not served yet.
	Scale    func(namespace, name string, replicas int) (int, bool)
	Replicas func(namespace, name string) (int, bool)
	// Applied waits until the data plane serves a revision of a function.
	Applied func(ctx context.Context, namespace, name string, rev uint64)
	// Delete removes a function through nimbus's one delete path (its
	// published versions and aliases with it) and waits until the data
	// plane has stopped serving it. An error it wraps in ErrRefused is
	// answered 409 with its words.
	Delete  func(ctx context.Context, namespace, name string) error
	Deploy  Deploy
	Token   string
	Version string
	// Orchestration names the runtimes, for /system/info.
	Orchestration string
}

// Route is one method and pattern the adapter answers.
type Route struct{ Method, Pattern string }

// Handler serves /system/*.
type Handler struct {
	opts   Options
	mux    *http.ServeMux
	routes []Route
}

// New builds the handler.
func New(o Options) *Handler {
	h := &Handler{opts: o, mux: http.NewServeMux()}
	for _, r := range []struct {
		method, pattern string
		fn              http.HandlerFunc
	}{
		{"GET", "/system/functions", h.list},
		{"POST", "/system/functions", h.create},
		{"PUT", "/system/functions", h.update},
		{"DELETE", "/system/functions", h.delete},
		{"GET", "/system/function/{name}", h.get},
		{"POST", "/system/scale-function/{name}", h.scale},
		{"GET", "/system/info", h.info},
		{"GET", "/system/namespaces", h.namespaces},
		{"GET", "/system/logs", h.logs},
		{"POST", "/system/alert", h.alertScale},
		{"GET", "/system/secrets", h.listSecrets},
		{"POST", "/system/secrets", h.createSecret},
		{"PUT", "/system/secrets", h.updateSecret},
		{"DELETE", "/system/secrets", h.deleteSecret},
	} {
		h.mux.HandleFunc(r.method+" "+r.pattern, r.fn)
		h.routes = append(h.routes, Route{r.method, r.pattern})
	}
	return h
}

// Routes lists what the adapter answers.
func (h *Handler) Routes() []Route { return h.routes }

// ServeHTTP checks the credential and dispatches.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="nimbus"`)
		http.Error(w, "Unauthorized: log in with faas-cli login -u admin and the nimbus admin token as the password", http.StatusUnauthorized)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return false
	}
	auth := r.Header.Get("Authorization")
	if user, pass, ok := r.BasicAuth(); ok {
		return subtle.ConstantTimeCompare([]byte(user), []byte("admin"))&
			subtle.ConstantTimeCompare([]byte(pass), []byte(h.opts.Token)) == 1
	}
	return subtle.ConstantTimeCompare([]byte(auth), []byte("Bearer "+h.opts.Token)) == 1
}

// BasicAuth is the header value faas-cli sends for the admin token.
func BasicAuth(token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+token))
}

// namespaceOf maps OpenFaaS's namespace to nimbus's: "" (the provider's
// default) and "openfaas-fn" (what OpenFaaS clients call it) are nimbus's
// default namespace.
func namespaceOf(ns string) string { return function.CanonicalNamespace(ns) }

// ofNamespace is the name OpenFaaS clients know a nimbus namespace by.
func ofNamespace(ns string) string {
	if ns == function.DefaultNamespace {
		return function.OpenFaaSNamespace
	}
	return ns
}

func (h *Handler) status(rec store.Record) FunctionStatus {
	st, _, _ := h.opts.Status(rec.Function.Namespace, rec.Function.Name)
	s := toStatus(rec, st)
	if h.opts.Replicas != nil {
		if n, ok := h.opts.Replicas(rec.Function.Namespace, rec.Function.Name); ok {
			s.Replicas = uint64(n) // the desired count, as a Deployment's spec.replicas
		}
	}
	return s
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	ns := namespaceOf(r.URL.Query().Get("namespace"))
	if err := function.ValidateName("namespace", ns); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	recs, err := h.opts.Store.List(r.Context(), ns)
	if err != nil {
		storeError(w, err)
		return
	}
	out := make([]FunctionStatus, 0, len(recs))
	for _, rec := range recs {
		if rec.Function.VersionOf == "" { // a published version is not a function of its own to OpenFaaS
			out = append(out, h.status(rec))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	ns := namespaceOf(r.URL.Query().Get("namespace"))
	rec, err := h.opts.Store.Get(r.Context(), ns, r.PathValue("name"))
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.status(rec))
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) { h.deploy(w, r, true, false) }
func (h *Handler) update(w http.ResponseWriter, r *http.Request) { h.deploy(w, r, false, true) }

func (h *Handler) deploy(w http.ResponseWriter, r *http.Request, createOnly, updateOnly bool) {
	var dep FunctionDeployment
	if err := decode(r, &dep); err != nil {
		badBody(w, err)
		return
	}
	fn, err := ToFunction(dep)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := h.opts.Deploy(r.Context(), fn, createOnly, updateOnly); err != nil {
		var hs interface{ HTTPStatus() int }
		if errors.As(err, &hs) {
			http.Error(w, err.Error(), hs.HTTPStatus())
			return
		}
		storeError(w, err)
		return
	}
	if createOnly {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	var req DeleteFunctionRequest
	if err := decode(r, &req); err != nil {
		badBody(w, err)
		return
	}
	if req.FunctionName == "" {
		http.Error(w, "functionName is required", http.StatusBadRequest)
		return
	}
	ns := req.Namespace
	if ns == "" {
		ns = r.URL.Query().Get("namespace") // where faas-cli puts it
	}
	if err := h.opts.Delete(r.Context(), namespaceOf(ns), req.FunctionName); err != nil {
		if errors.Is(err, ErrRefused) {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted) // as faas-netes
}

// scale sets the function's replicas, as faas-netes sets a Deployment's:
// no new revision, no instance replaced. The autoscaler keeps at least that
// many until the function is scaled again.
func (h *Handler) scale(w http.ResponseWriter, r *http.Request) {
	var req ScaleServiceRequest
	if err := decode(r, &req); err != nil {
		badBody(w, err)
		return
	}
	name := r.PathValue("name")
	if req.ServiceName != "" && req.ServiceName != name {
		http.Error(w, "serviceName differs from the name in the path", http.StatusBadRequest)
		return
	}
	ns := req.Namespace
	if ns == "" {
		ns = r.URL.Query().Get("namespace") // where faas-cli puts it
	}
	ns = namespaceOf(ns)
	rec, err := h.opts.Store.Get(r.Context(), ns, name)
	if err != nil {
		storeError(w, err)
		return
	}
	if req.Replicas > uint64(rec.Function.Scale.Max) {
		http.Error(w, fmt.Sprintf("replicas %d is above the function's maximum of %d: raise the %s label (or scale.max) first",
			req.Replicas, rec.Function.Scale.Max, labelMax), http.StatusBadRequest)
		return
	}
	if h.opts.Scale == nil {
		http.Error(w, "scaling is not available", http.StatusServiceUnavailable)
		return
	}
	if h.opts.Applied != nil {
		h.opts.Applied(r.Context(), ns, name, rec.Revision)
	}
	if _, ok := h.opts.Scale(ns, name, int(req.Replicas)); !ok {
		http.Error(w, "function is not served yet; retry shortly", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (h *Handler) info(w http.ResponseWriter, r *http.Request) {
	v := &VersionInfo{Release: h.opts.Version, SHA: h.opts.Version}
	writeJSON(w, http.StatusOK, GatewayInfo{
		Provider: &ProviderInfo{Name: "nimbus", Orchestration: h.opts.Orchestration, Version: v},
		Version:  v, Arch: runtime.GOARCH,
	})
}

// namespaces lists the namespaces in use — those with functions or
// secrets — and always the default one, by the names OpenFaaS clients use
// ("openfaas-fn" for nimbus's default).
func (h *Handler) namespaces(w http.ResponseWriter, r *http.Request) {
	recs, err := h.opts.Store.List(r.Context(), "")
	if err != nil {
		storeError(w, err)
		return
	}
	seen := map[string]bool{function.OpenFaaSNamespace: true}
	for _, rec := range recs {
		seen[ofNamespace(rec.Function.Namespace)] = true
	}
	if secrets, err := h.opts.Secrets.ListSecrets(r.Context(), ""); err == nil {
		for _, s := range secrets {
			seen[ofNamespace(s.Namespace)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	writeJSON(w, http.StatusOK, out)
}

// ErrRefused marks a deletion refused for a reason its message gives.
var ErrRefused = errors.New("refused")

func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "function not found", http.StatusNotFound)
	case errors.Is(err, store.ErrExists):
		http.Error(w, "function already exists: update it with PUT /system/functions", http.StatusConflict)
	case errors.Is(err, store.ErrConflict):
		http.Error(w, "function changed concurrently; retry", http.StatusConflict)
	case errors.Is(err, store.ErrUnavailable):
		http.Error(w, "store unavailable; retry shortly", http.StatusServiceUnavailable)
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}
