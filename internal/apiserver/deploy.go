package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

// DeployMode says whether a deploy may create, update, or both.
type DeployMode int

const (
	Upsert     DeployMode = iota // create or update (PUT /v1/functions/{name})
	CreateOnly                   // fail if it exists (OpenFaaS POST)
	UpdateOnly                   // fail if it does not (OpenFaaS PUT)
)

// DeployError is a deploy refused for a reason the caller can fix.
type DeployError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *DeployError) Error() string { return e.Message }

// HTTPStatus is the status to answer with.
func (e *DeployError) HTTPStatus() int { return e.Status }

func refuse(e *apiError, format string, args ...any) *DeployError {
	return &DeployError{Status: e.status, Code: e.code, Message: fmt.Sprintf(format, args...)}
}

// Deploy checks fn (defaults, validation, runtime, package or image) and
// stores it. Every API that deploys goes through here, so every entry point
// checks the same way. ifMatch, if not 0, is the revision an update must
// replace. Errors are *DeployError, or store errors (ErrExists, ErrNotFound,
// ErrConflict, ErrUnavailable) for the caller to map.
func (s *Server) Deploy(ctx context.Context, fn function.Function, mode DeployMode, ifMatch uint64) (store.Record, bool, error) {
	if fn.Runtime == "" && fn.Image != "" && s.opts.ImageRuntime != "" {
		fn.Runtime = s.opts.ImageRuntime
	}
	if fn.Runtime == "" && fn.Image == "" && s.opts.PackageRuntime != "" {
		fn.Runtime = s.opts.PackageRuntime
	}
	fn = fn.WithDefaults()
	if err := fn.Validate(); err != nil {
		var fe *function.FieldError
		if errors.As(err, &fe) {
			return store.Record{}, false, &DeployError{Status: http.StatusBadRequest, Code: errInvalidSpec.code, Field: fe.Field, Message: fe.Error()}
		}
		return store.Record{}, false, refuse(errInvalidSpec, "%v", err)
	}
	if !s.opts.Runtimes[fn.Runtime] {
		msg := fmt.Sprintf("runtime %q is not enabled on this nimbus", fn.Runtime)
		if fn.Runtime == function.RuntimeDocker {
			msg = "runtime \"docker\" needs a Docker engine, and none answered when nimbus started: start dockerd (or point DOCKER_HOST at an engine) and restart nimbus"
		}
		if fn.Runtime == function.RuntimeKube {
			msg = "runtime \"kube\" needs a Kubernetes cluster: restart nimbus with --kubeconfig FILE (or run it in a pod)"
		}
		return store.Record{}, false, refuse(errRuntimeDisabled, "%s", msg)
	}
	if fn.Package != "" {
		if _, err := s.opts.Store.StatPackage(ctx, fn.Package); errors.Is(err, store.ErrNotFound) {
			return store.Record{}, false, refuse(errNoPackage, "package %s is not uploaded: POST it to /v1/packages first", fn.Package)
		} else if err != nil {
			return store.Record{}, false, err
		}
	}
	for _, name := range fn.Secrets {
		if _, err := s.opts.Store.SecretValue(ctx, fn.Namespace, name); errors.Is(err, store.ErrNotFound) {
			return store.Record{}, false, refuse(errMissingSecret, "secret %q does not exist in namespace %q: create it first (PUT /v1/secrets/%s)", name, fn.Namespace, name)
		} else if err != nil {
			return store.Record{}, false, err
		}
	}
	if prep := s.opts.Prepare[fn.Runtime]; prep != nil {
		if err := prep(ctx, fn); err != nil {
			if fn.Image == "" {
				return store.Record{}, false, refuse(errRuntimeDisabled, "%v", err)
			}
			return store.Record{}, false, refuse(errImage, "image %s cannot be used: %v", fn.Image, err)
		}
	}
	if fn.VersionOf != "" && mode != CreateOnly {
		return store.Record{}, false, &DeployError{Status: http.StatusBadRequest, Code: errInvalidSpec.code, Field: "versionOf",
			Message: "versionOf is set by publishing a version (POST /v1/functions/NAME/versions); a version is never updated"}
	}
	rec, created, err := s.put(ctx, fn, mode, ifMatch)
	if err == nil {
		s.opts.Logger.Info("function deployed", "function", fn.Key(), "revision", rec.Revision)
		s.awaitApplied(ctx, fn.Namespace, fn.Name, rec.Revision)
	}
	return rec, created, err
}

// applyWait bounds how long an API call waits for the data plane to catch up
// with a write it made; past it the call answers anyway (the write stands).
const applyWait = 5 * time.Second

// awaitApplied lets the local gateway catch up with a write, so that the
// caller's next invocation sees it (read your writes).
func (s *Server) awaitApplied(ctx context.Context, namespace, name string, rev uint64) {
	ctx, cancel := context.WithTimeout(ctx, applyWait)
	defer cancel()
	if err := s.opts.Invoker.WaitApplied(ctx, namespace, name, rev); err != nil {
		s.opts.Logger.Warn("the gateway has not applied a change yet", "function", function.Key(namespace, name), "revision", rev)
	}
}

// put creates or updates, retrying once if a concurrent writer got between
// the read and the write (unless the caller asked for a revision).
func (s *Server) put(ctx context.Context, fn function.Function, mode DeployMode, ifMatch uint64) (store.Record, bool, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.opts.Store.Get(ctx, fn.Namespace, fn.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if ifMatch != 0 || mode == UpdateOnly {
				return store.Record{}, false, err
			}
			rec, err := s.opts.Store.Create(ctx, fn)
			if errors.Is(err, store.ErrExists) && attempt == 0 && mode == Upsert {
				continue
			}
			return rec, true, err
		case err != nil:
			return store.Record{}, false, err
		case mode == CreateOnly:
			return store.Record{}, false, fmt.Errorf("%w: function %s", store.ErrExists, fn.Key())
		case cur.Function.VersionOf != "":
			v := cur.Function
			return store.Record{}, false, &DeployError{Status: http.StatusConflict, Code: errVersionImmutable.code, Field: "name",
				Message: fmt.Sprintf("%s is version %d of %s, which is never updated: update %s and publish a new version", fn.Name, v.Version, v.VersionOf, v.VersionOf)}
		}
		rev := cur.Revision
		if ifMatch != 0 {
			rev = ifMatch
		}
		rec, err := s.opts.Store.Update(ctx, fn, rev)
		if errors.Is(err, store.ErrConflict) && ifMatch == 0 && attempt == 0 {
			continue
		}
		return rec, false, err
	}
}

// writeDeployError answers a failed deploy in the native error shape.
func writeDeployError(w http.ResponseWriter, err error, what string) {
	var de *DeployError
	if errors.As(err, &de) {
		var b errorBody
		b.Error.Code, b.Error.Message, b.Error.Field = de.Code, de.Message, de.Field
		writeJSON(w, de.Status, b)
		return
	}
	writeStoreError(w, err, what)
}
