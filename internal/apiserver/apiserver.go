// Package apiserver serves nimbus's HTTP surface: the native control API under
// /v1 (JSON, described by api/openapi.yaml), the health and metrics endpoints,
// and the invocation routes it hands to the gateway.
//
// Every /v1 route needs "Authorization: Bearer <admin token>"; /function/* is
// open. Errors are {"error": {"code": "...", "message": "..."}} with the
// stable codes listed in codes.go.
package apiserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"nimbus/internal/archive"
	"nimbus/internal/events"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/openfaas"
	"nimbus/internal/queue"
	"nimbus/internal/scaler"
	"nimbus/internal/series"
	"nimbus/internal/store"
	"nimbus/internal/trigger"
	"nimbus/internal/versions"
)

// Invoker is the data plane as the API sees it.
type Invoker interface {
	http.Handler
	Status(namespace, name string) (gateway.Status, []gateway.InstanceStatus, bool)
	// WaitApplied waits until the data plane serves revision rev of a
	// function (rev 0: serves it no more).
	WaitApplied(ctx context.Context, namespace, name string, rev uint64) error
	// Series is a function's recent series (false: not served here).
	Series(namespace, name string) ([]series.Point, bool)
}

// Scaling is the autoscaler as the API sees it.
type Scaling interface {
	// Scale sets the replicas the API asks for (a floor the autoscaler
	// decides above); it returns the desired count, false for an unknown
	// function.
	Scale(namespace, name string, replicas int) (int, bool)
	// Status is a function's scaling state.
	Status(namespace, name string) (scaler.Status, bool)
}

// Options configure the API server.
type Options struct {
	Store   store.Store
	Invoker Invoker
	// Scaling scales functions (/v1/functions/NAME/scale and OpenFaaS's
	// /system/scale-function and /system/alert). Optional: without it they
	// answer 503.
	Scaling Scaling
	// Token is the admin credential /v1 requires.
	Token string
	// Runtimes are the runtimes a deploy may name.
	Runtimes map[string]bool
	// ImageRuntime is the runtime of a function that has an image and
	// names no runtime (OpenFaaS deploys among them): docker (the default)
	// or kube (nimbus up --provider kube).
	ImageRuntime string
	// PackageRuntime is the runtime of a function that has a package and
	// names none (default process).
	PackageRuntime string
	// Prepare, per runtime, readies what a function needs before it is stored
	// (the docker runtime pulls the image); an error fails the deploy.
	Prepare map[string]func(context.Context, function.Function) error
	// Metrics serves /metrics; MetricsAuth makes it need the admin token
	// (bearer, or OpenFaaS's basic admin:token).
	Metrics     http.Handler
	MetricsAuth bool
	// Ready reports whether nimbus is ready to serve (for /readyz).
	Ready func(ctx context.Context) error
	// Space, if set, says why the data dir's disk cannot take an upload
	// (507); nil when it can.
	Space func() error
	// MaxPackageBytes bounds an uploaded package. Default 256 MiB.
	MaxPackageBytes int64
	// PackageLimits bound what a package may unpack to (checked at upload).
	PackageLimits archive.Limits
	// SpoolDir holds uploads while they are checked. Default the system's
	// temporary directory; nimbus up uses its data dir.
	SpoolDir string
	// Queue holds dead letters (for /v1/deadletters); Async accepts
	// /async-function/ invocations. Both optional.
	Queue queue.Queue
	Async http.Handler
	// Calls answers /v1/calls. Optional.
	Calls CallIndex
	// Triggers keeps /v1/triggers. Optional.
	Triggers trigger.Store
	// EventConfig serves the Event Gateway configuration API (/v1/spaces,
	// /v1/status); CloudEvents accepts POST /events. Both optional.
	EventConfig *events.ConfigAPI
	CloudEvents http.Handler
	// UI serves the web UI under /ui/ (its files are open; what it shows
	// comes from /v1 with the token); / redirects a browser to it.
	// Optional.
	UI http.Handler
	// Versions lists and publishes functions' versions (/versions), and
	// deletes a function's versions with it. Optional.
	Versions *versions.Manager
	// Lambda serves the AWS Lambda API under /2015-03-31/ (signed with
	// access keys, not the admin token). Optional.
	Lambda http.Handler
	// Version is reported by /v1/info.
	Version string
	Logger  *slog.Logger
}

// Route is one method and path pattern the server answers.
type Route struct {
	Method  string
	Pattern string // net/http ServeMux pattern, without the method
	Auth    bool
	handler http.HandlerFunc
}

// Server is the HTTP handler of everything nimbus serves on its listener.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	routes []Route
}

// New builds the handler.
func New(o Options) *Server {
	if o.MaxPackageBytes == 0 {
		o.MaxPackageBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{opts: o, mux: http.NewServeMux()}
	s.routes = []Route{
		{"GET", "/healthz", false, s.healthz},
		{"GET", "/readyz", false, s.readyz},
		{"GET", "/metrics", o.MetricsAuth, o.Metrics.ServeHTTP},
		{"GET", "/v1/info", true, s.info},
		{"POST", "/v1/packages", true, s.uploadPackage},
		// The admin token, or the package's fetch token (a kube pod's).
		{"GET", packagePattern, true, s.sendPackage},
		{"GET", "/v1/functions", true, s.listFunctions},
		{"PUT", "/v1/functions/{name}", true, s.deployFunction},
		{"GET", "/v1/functions/{name}", true, s.getFunction},
		{"DELETE", "/v1/functions/{name}", true, s.deleteFunction},
		{"GET", "/v1/functions/{name}/logs", true, s.functionLogs},
		{"GET", "/v1/functions/{name}/instances", true, s.functionInstances},
		{"POST", "/v1/functions/{name}/scale", true, s.scaleFunction},
		{"GET", "/v1/functions/{name}/series", true, s.functionSeries},
		{"GET", "/v1/functions/{name}/revisions", true, s.functionRevisions},
		{"GET", "/v1/functions/{name}/versions", true, s.functionVersions},
		{"POST", "/v1/functions/{name}/versions", true, s.publishVersion},
		{"GET", "/v1/secrets", true, s.listSecrets},
		{"PUT", "/v1/secrets/{name}", true, s.putSecret},
		{"DELETE", "/v1/secrets/{name}", true, s.deleteSecret},
		{"GET", "/v1/keys", true, s.listKeys},
		{"POST", "/v1/keys", true, s.createKey},
		{"DELETE", "/v1/keys/{id}", true, s.deleteKey},
	}
	for _, r := range s.routes {
		h := http.Handler(r.handler)
		switch {
		case r.Pattern == packagePattern:
			h = s.packageAuth(h)
		case r.Auth:
			h = s.auth(h)
		}
		s.mux.Handle(r.Method+" "+r.Pattern, h)
	}
	// The OpenFaaS gateway API, deploying through the same path.
	orch := make([]string, 0, len(o.Runtimes))
	for rt := range o.Runtimes {
		orch = append(orch, rt)
	}
	sort.Strings(orch)
	ofo := openfaas.Options{
		Store: o.Store, Secrets: o.Store, Logs: o.Store, Status: o.Invoker.Status, Token: o.Token, Version: o.Version,
		Delete: func(ctx context.Context, ns, name string) error {
			err := s.DeleteFunction(ctx, ns, name)
			if errors.Is(err, versions.ErrInUse) {
				return fmt.Errorf("%w: %v", openfaas.ErrRefused, err)
			}
			return err
		},
		Applied:       s.awaitApplied,
		Orchestration: strings.Join(orch, ","),
		Deploy: func(ctx context.Context, fn function.Function, createOnly, updateOnly bool) (store.Record, error) {
			mode := Upsert
			switch {
			case createOnly:
				mode = CreateOnly
			case updateOnly:
				mode = UpdateOnly
			}
			rec, _, err := s.Deploy(ctx, fn, mode, 0)
			return rec, err
		},
	}
	if o.Scaling != nil {
		ofo.Scale = o.Scaling.Scale
		ofo.Replicas = func(ns, name string) (int, bool) {
			st, ok := o.Scaling.Status(ns, name)
			return st.Desired, ok
		}
	}
	of := openfaas.New(ofo)
	for _, r := range of.Routes() {
		s.routes = append(s.routes, Route{Method: r.Method, Pattern: r.Pattern, Auth: true})
	}
	s.mux.Handle("/system/", of)
	if o.Queue != nil {
		s.add(
			Route{"GET", "/v1/deadletters", true, s.listDeadLetters},
			Route{"GET", "/v1/deadletters/{id}", true, s.getDeadLetter},
			Route{"POST", "/v1/deadletters/{id}/redrive", true, s.redriveDeadLetter},
			Route{"DELETE", "/v1/deadletters/{id}", true, s.purgeDeadLetter},
		)
	}
	if o.Calls != nil {
		s.add(
			Route{"GET", "/v1/calls", true, s.listCalls},
			Route{"GET", "/v1/calls/{id}", true, s.getCall},
		)
	}
	if o.Triggers != nil {
		s.add(
			Route{"GET", "/v1/triggers", true, s.listTriggers},
			Route{"PUT", "/v1/triggers/{name}", true, s.putTrigger},
			Route{"GET", "/v1/triggers/{name}", true, s.getTrigger},
			Route{"DELETE", "/v1/triggers/{name}", true, s.deleteTrigger},
		)
	}
	if o.EventConfig != nil {
		// The Event Gateway's errors, 401 included, are {"errors":[...]}.
		egAuth := func(next http.Handler) http.Handler {
			return s.authWith(next, func(w http.ResponseWriter, msg string) {
				events.WriteErrors(w, http.StatusUnauthorized, msg)
			})
		}
		o.EventConfig.Register(s.mux, egAuth)
		for _, r := range o.EventConfig.Routes() {
			s.routes = append(s.routes, Route{Method: r.Method, Pattern: r.Pattern, Auth: !r.Open})
		}
		// The Event Gateway's metrics are on its config API.
		metrics := http.Handler(o.Metrics)
		if o.MetricsAuth {
			metrics = egAuth(metrics)
		}
		s.mux.Handle("GET /v1/metrics", metrics)
		s.routes = append(s.routes, Route{Method: "GET", Pattern: "/v1/metrics", Auth: o.MetricsAuth})
	}
	if o.CloudEvents != nil {
		s.mux.Handle("/events", o.CloudEvents)
		s.routes = append(s.routes, Route{Method: "POST", Pattern: "/events"})
	}
	if o.Async != nil {
		s.mux.Handle("/async-function/", o.Async)
	}
	if o.Lambda != nil {
		s.mux.Handle("/2015-03-31/", o.Lambda)
		s.mux.Handle("/2019-09-25/", o.Lambda)
		s.routes = append(s.routes, Route{Method: "POST", Pattern: "/2015-03-31/functions/{name}/invocations"})
	}
	if o.UI != nil {
		s.mux.Handle("GET /ui/", o.UI)
		s.mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
		s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept"), "text/html") {
				writeError(w, errNoRoute, "nothing is served at /: the API is under /v1 (see api/openapi.yaml), functions under /function/, the web UI at /ui/")
				return
			}
			http.Redirect(w, r, "/ui/", http.StatusFound)
		})
		s.routes = append(s.routes, Route{Method: "GET", Pattern: "/ui/"}, Route{Method: "GET", Pattern: "/{$}"})
	}
	// Invocations: any method, the function's own path below.
	s.mux.Handle(gateway.Prefix, o.Invoker)
	s.mux.Handle("/v1/", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNoRoute, "no such API route: "+r.Method+" "+r.URL.Path+"; see api/openapi.yaml")
	})))
	return s
}

// add serves authenticated routes.
func (s *Server) add(routes ...Route) {
	for _, r := range routes {
		s.routes = append(s.routes, r)
		s.mux.Handle(r.Method+" "+r.Pattern, s.auth(r.handler))
	}
}

// Routes lists what the server answers besides /function/*.
func (s *Server) Routes() []Route { return s.routes }

// ServeHTTP dispatches a request. Invocations skip the mux's pattern matching
// on the hot path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, gateway.Prefix) {
		s.opts.Invoker.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return s.authWith(next, func(w http.ResponseWriter, msg string) { writeError(w, errUnauthorized, msg) })
}

// authWith lets through a request with the admin token — "Bearer TOKEN",
// the scheme in any case (the Event Gateway's SDK sends "bearer"), or for
// /metrics OpenFaaS's basic admin:TOKEN — and answers others with fail.
func (s *Server) authWith(next http.Handler, fail func(w http.ResponseWriter, msg string)) http.Handler {
	token := []byte(s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := false
		if scheme, cred, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") {
			ok = len(token) > 0 && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), token) == 1
		}
		if user, pass, basic := r.BasicAuth(); basic && !ok && len(token) > 0 && (r.URL.Path == "/metrics" || r.URL.Path == "/v1/metrics") {
			// Prometheus scrapers are often set up with OpenFaaS's credential.
			ok = subtle.ConstantTimeCompare([]byte(user), []byte("admin"))&subtle.ConstantTimeCompare([]byte(pass), token) == 1
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nimbus"`)
			fail(w, "missing or wrong admin token: send 'Authorization: Bearer <token>' (the token is in the data dir's admin-token file)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.opts.Ready != nil {
		if err := s.opts.Ready(ctx); err != nil {
			writeError(w, errUnavailable, "not ready: "+err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	runtimes := make([]string, 0, len(s.opts.Runtimes))
	for rt := range s.opts.Runtimes {
		runtimes = append(runtimes, rt)
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": s.opts.Version, "runtimes": runtimes})
}
