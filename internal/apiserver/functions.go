package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nimbus/internal/archive"
	"nimbus/internal/fetchtoken"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/reqbody"
	"nimbus/internal/scaler"
	"nimbus/internal/series"
	"nimbus/internal/store"
)

// maxSpecBytes bounds a function spec in a request.
const maxSpecBytes = 1 << 20

// FunctionView is a function as the API shows it: its spec, revision and
// live status.
type FunctionView struct {
	Function function.Function `json:"function"`
	Revision uint64            `json:"revision"`
	Updated  time.Time         `json:"updated"`
	Status   gateway.Status    `json:"status"`
	// Scale is the desired and ready replicas and the last decision.
	Scale *scaler.Status `json:"scale,omitempty"`
}

// target reads {name} and ?namespace= and checks both.
func target(w http.ResponseWriter, r *http.Request) (ns, name string, ok bool) {
	name = r.PathValue("name")
	ns = r.URL.Query().Get("namespace")
	if ns == "" {
		ns = function.DefaultNamespace
	}
	for _, check := range []struct{ field, v string }{{"name", name}, {"namespace", ns}} {
		if err := function.ValidateName(check.field, check.v); err != nil {
			var fe *function.FieldError
			errors.As(err, &fe)
			writeFieldError(w, fe)
			return "", "", false
		}
	}
	return ns, name, true
}

// stored reads {name} and ?namespace= and the function's record; when it
// reports false it has answered (400 or the store's error).
func (s *Server) stored(w http.ResponseWriter, r *http.Request) (store.Record, bool) {
	ns, name, ok := target(w, r)
	if !ok {
		return store.Record{}, false
	}
	rec, err := s.opts.Store.Get(r.Context(), ns, name)
	if err != nil {
		writeStoreError(w, err, "function "+function.Key(ns, name))
		return store.Record{}, false
	}
	return rec, true
}

func (s *Server) view(rec store.Record) FunctionView {
	st, _, _ := s.opts.Invoker.Status(rec.Function.Namespace, rec.Function.Name)
	v := FunctionView{Function: rec.Function, Revision: rec.Revision, Updated: rec.Updated, Status: st}
	if s.opts.Scaling != nil {
		if sc, ok := s.opts.Scaling.Status(rec.Function.Namespace, rec.Function.Name); ok {
			v.Scale = &sc
		}
	}
	return v
}

// ScaleRequest is the body of POST /v1/functions/NAME/scale.
type ScaleRequest struct {
	// Replicas the function keeps at least (within scale.max) until scaled
	// again; 0 hands it back to the autoscaler alone.
	Replicas *int `json:"replicas"`
}

// scaleFunction sets a function's replicas without a new revision.
func (s *Server) scaleFunction(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	if s.opts.Scaling == nil {
		writeError(w, errUnavailable, "scaling is not available on this server")
		return
	}
	var req ScaleRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	if err != nil {
		writeBodyError(w, err, 4096, "scale request")
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Replicas == nil {
		writeFieldError(w, &function.FieldError{Field: "replicas", Msg: fmt.Sprintf("is required: send {\"replicas\": N}, N a whole number from 0 to %d", function.MaxInstances)})
		return
	}
	if n := *req.Replicas; n < 0 || n > function.MaxInstances {
		writeFieldError(w, &function.FieldError{Field: "replicas", Msg: fmt.Sprintf("%d is out of range: use 0 to %d", n, function.MaxInstances)})
		return
	}
	rec, err := s.opts.Store.Get(r.Context(), ns, name)
	if err != nil {
		writeStoreError(w, err, "function "+function.Key(ns, name))
		return
	}
	if *req.Replicas > rec.Function.Scale.Max {
		writeFieldError(w, &function.FieldError{Field: "replicas", Msg: fmt.Sprintf("%d is above the function's scale.max %d: raise scale.max first", *req.Replicas, rec.Function.Scale.Max)})
		return
	}
	// The data plane may not have the function yet (just deployed).
	s.awaitApplied(r.Context(), ns, name, rec.Revision)
	if _, ok := s.opts.Scaling.Scale(ns, name, *req.Replicas); !ok {
		writeError(w, errUnavailable, "function "+function.Key(ns, name)+" is not yet served here; retry shortly")
		return
	}
	writeJSON(w, http.StatusOK, s.view(rec))
}

// namespaceFilter reads an optional ?namespace= ("" means all) and checks it.
func namespaceFilter(w http.ResponseWriter, r *http.Request) (string, bool) {
	ns := r.URL.Query().Get("namespace")
	if ns != "" {
		if err := function.ValidateName("namespace", ns); err != nil {
			var fe *function.FieldError
			errors.As(err, &fe)
			writeFieldError(w, fe)
			return "", false
		}
	}
	return ns, true
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request) {
	ns, ok := namespaceFilter(w, r)
	if !ok {
		return
	}
	recs, err := s.opts.Store.List(r.Context(), ns)
	if err != nil {
		writeStoreError(w, err, "functions")
		return
	}
	out := make([]FunctionView, 0, len(recs))
	for _, rec := range recs {
		if rec.Function.VersionOf == "" { // versions are listed by /versions
			out = append(out, s.view(rec))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"functions": out})
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request) {
	if rec, ok := s.stored(w, r); ok {
		writeJSON(w, http.StatusOK, s.view(rec))
	}
}

// DecodeSpec reads a function spec from JSON, refusing unknown fields.
func DecodeSpec(r io.Reader) (function.Function, error) {
	var fn function.Function
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fn); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			want := "a " + te.Type.String()
			if r, ok := function.Ranges[te.Field]; ok {
				want = r
			}
			return fn, &function.FieldError{Field: te.Field, Msg: fmt.Sprintf("%s is not valid here: use %s", te.Value, want)}
		}
		return fn, fmt.Errorf("the body is not a valid function spec: %v", err)
	}
	if dec.More() {
		return fn, errors.New("the body holds more than one JSON value")
	}
	return fn, nil
}

// deployFunction creates or updates a function (PUT is idempotent). An
// If-Match header with a revision makes the update conditional.
func (s *Server) deployFunction(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSpecBytes))
	if err != nil {
		writeBodyError(w, err, maxSpecBytes, "function spec")
		return
	}
	fn, err := DecodeSpec(bytes.NewReader(body))
	if err != nil {
		var fe *function.FieldError
		if errors.As(err, &fe) {
			writeFieldError(w, fe)
			return
		}
		writeError(w, errBadRequest, err.Error())
		return
	}
	if fn.Name != "" && fn.Name != name {
		writeFieldError(w, &function.FieldError{Field: "name", Msg: fmt.Sprintf("%q differs from the name in the path %q: make them equal or leave it out", fn.Name, name)})
		return
	}
	if fn.Namespace != "" && fn.Namespace != ns {
		writeFieldError(w, &function.FieldError{Field: "namespace", Msg: fmt.Sprintf("%q differs from ?namespace=%s: make them equal or leave it out", fn.Namespace, ns)})
		return
	}
	fn.Name, fn.Namespace = name, ns
	var ifMatch uint64
	if v := r.Header.Get("If-Match"); v != "" {
		if ifMatch, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, errBadRequest, "If-Match must be a revision number")
			return
		}
	}
	rec, created, err := s.Deploy(r.Context(), fn, Upsert, ifMatch)
	if err != nil {
		writeDeployError(w, err, "function "+function.Key(ns, name))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.view(rec))
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	if err := s.DeleteFunction(r.Context(), ns, name); err != nil {
		writeVersionError(w, err, "function "+function.Key(ns, name))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DeleteFunction removes a function with its published versions and
// aliases, or one version (unless an alias names it), and waits (briefly)
// for the data plane to stop serving it; store errors are the caller's to
// map.
func (s *Server) DeleteFunction(ctx context.Context, ns, name string) error {
	if v := s.opts.Versions; v != nil {
		rec, err := s.opts.Store.Get(ctx, ns, name)
		if err != nil {
			return err
		}
		if f := rec.Function; f.VersionOf != "" {
			return v.DeleteVersion(ctx, ns, f.VersionOf, f.Version)
		}
	}
	if err := s.RemoveFunction(ctx, ns, name); err != nil {
		return err
	}
	if v := s.opts.Versions; v != nil {
		return v.DeleteAll(ctx, ns, name)
	}
	return nil
}

// RemoveFunction removes one stored function, whatever it is, and waits
// (briefly) for the data plane to stop serving it.
func (s *Server) RemoveFunction(ctx context.Context, ns, name string) error {
	if err := s.opts.Store.Delete(ctx, ns, name, 0); err != nil {
		return err
	}
	s.opts.Logger.Info("function deleted", "function", function.Key(ns, name))
	s.awaitApplied(ctx, ns, name, 0)
	return nil
}

// StorePackage checks a package (a gzipped tar) against the package
// limits, then stores it; a package refused by the checks is an
// archive.IsRefused error.
func (s *Server) StorePackage(ctx context.Context, tgz []byte) (string, error) {
	if s.opts.Space != nil {
		if err := s.opts.Space(); err != nil {
			return "", err
		}
	}
	if int64(len(tgz)) > s.opts.MaxPackageBytes {
		return "", fmt.Errorf("a package may be at most %d bytes", s.opts.MaxPackageBytes)
	}
	if _, err := archive.Check(bytes.NewReader(tgz), s.opts.PackageLimits); err != nil {
		return "", err
	}
	info, err := s.opts.Store.PutPackage(ctx, bytes.NewReader(tgz))
	return info.Digest, err
}

func (s *Server) functionInstances(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.stored(w, r)
	if !ok {
		return
	}
	_, list, _ := s.opts.Invoker.Status(rec.Function.Namespace, rec.Function.Name)
	if list == nil {
		list = []gateway.InstanceStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"instances": list})
}

// functionRevisions answers a function's stored revisions, newest first.
func (s *Server) functionRevisions(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := target(w, r)
	if !ok {
		return
	}
	revs, err := s.opts.Store.Revisions(r.Context(), ns, name)
	if err != nil {
		writeStoreError(w, err, "function "+function.Key(ns, name))
		return
	}
	type revision struct {
		Revision uint64            `json:"revision"`
		Updated  time.Time         `json:"updated"`
		Function function.Function `json:"function"`
	}
	out := make([]revision, len(revs))
	for i, rec := range revs {
		out[i] = revision{rec.Revision, rec.Updated, rec.Function}
	}
	writeJSON(w, http.StatusOK, map[string]any{"revisions": out})
}

// functionSeries answers a function's recent series on this gateway: one
// point per step (gateway.RecentStep) over the last gateway.RecentSteps.
func (s *Server) functionSeries(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.stored(w, r)
	if !ok {
		return
	}
	points, ok := s.opts.Invoker.Series(rec.Function.Namespace, rec.Function.Name)
	if !ok {
		points = []series.Point{} // stored, not yet served here
	}
	writeJSON(w, http.StatusOK, map[string]any{"step": gateway.RecentStep.Seconds(), "points": points})
}

// uploadPackage takes a package: it is spooled to a file, read through once
// to check what it holds (archive.Check: no entry leaving it, no link or
// device, within the unpacked limits) and only then stored, so a package a
// function could never start from is refused now, with a 400 naming the
// entry, not at its first invocation.
func (s *Server) uploadPackage(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > s.opts.MaxPackageBytes {
		writeError(w, errTooLarge, fmt.Sprintf("a package may be at most %d bytes", s.opts.MaxPackageBytes))
		return
	}
	if s.opts.Space != nil {
		if err := s.opts.Space(); err != nil {
			writeError(w, errNoSpace, "the package was not stored: "+err.Error())
			return
		}
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxPackageBytes)
	// Check the gzip magic before storing anything.
	head := make([]byte, 2)
	if _, err := io.ReadFull(body, head); err != nil && (reqbody.IsTimeout(err) || errors.As(err, new(*http.MaxBytesError))) {
		writeBodyError(w, err, s.opts.MaxPackageBytes, "package")
		return
	} else if err != nil || head[0] != 0x1f || head[1] != 0x8b {
		writeError(w, errBadRequest, "a package must be a gzipped tar (nimbus deploy makes one)")
		return
	}
	spool, err := os.CreateTemp(s.opts.SpoolDir, "upload-")
	if err != nil {
		s.spaceError(w, err, "the upload could not be spooled")
		return
	}
	defer func() { spool.Close(); os.Remove(spool.Name()) }()
	if _, err := io.Copy(spool, io.MultiReader(bytes.NewReader(head), body)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || reqbody.IsTimeout(err) {
			writeBodyError(w, err, s.opts.MaxPackageBytes, "package")
			return
		}
		s.spaceError(w, err, "the upload could not be spooled")
		return
	}
	spool.Seek(0, io.SeekStart)
	sum, err := archive.Check(spool, s.opts.PackageLimits)
	if archive.IsRefused(err) {
		writeError(w, errBadPackage, err.Error())
		return
	} else if err != nil {
		s.spaceError(w, err, "the upload could not be read back")
		return
	}
	spool.Seek(0, io.SeekStart)
	info, err := s.opts.Store.PutPackage(r.Context(), spool)
	if err != nil {
		writeStoreError(w, err, "package")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"digest": info.Digest, "size": info.Size, "files": sum.Files, "unpackedBytes": sum.Bytes})
}

// packagePattern is the route of a package's bytes.
const packagePattern = "/v1/packages/{digest}"

// packageAuth lets through the holder of the admin token or of the
// package's fetch token (which the kube runtime gives the pods that run
// it, so that they fetch it and nothing else).
func (s *Server) packageAuth(next http.Handler) http.Handler {
	admin := s.auth(next)
	var key []byte
	if s.opts.Token != "" {
		key = fetchtoken.Key(s.opts.Token)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		digest := r.PathValue("digest")
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if strings.EqualFold(scheme, "Bearer") && function.IsPackageDigest(digest) && fetchtoken.Valid(key, digest, strings.TrimSpace(cred)) {
			next.ServeHTTP(w, r)
			return
		}
		admin.ServeHTTP(w, r)
	})
}

// sendPackage sends a package's bytes.
func (s *Server) sendPackage(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if !function.IsPackageDigest(digest) {
		writeError(w, errBadRequest, fmt.Sprintf("%q is not a package digest: expected \"sha256:\" and 64 lowercase hex digits", digest))
		return
	}
	info, err := s.opts.Store.StatPackage(r.Context(), digest)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errPackageNotFound, "package "+digest+" is not stored: upload it with POST /v1/packages")
		return
	} else if err != nil {
		writeStoreError(w, err, "package")
		return
	}
	rc, err := s.opts.Store.OpenPackage(r.Context(), digest)
	if err != nil {
		writeStoreError(w, err, "package")
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("ETag", `"`+digest+`"`)
	w.Header().Set("Cache-Control", "private, immutable")
	io.Copy(w, rc)
}

// spaceError answers a failure to write to the data dir's disk: 507 when
// it is full, else 500; either is logged.
func (s *Server) spaceError(w http.ResponseWriter, err error, what string) {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		s.opts.Logger.Error(what+": the disk is full", "err", err)
		writeError(w, errNoSpace, what+": the data dir's disk is full; free space and retry")
		return
	}
	s.opts.Logger.Error(what, "err", err)
	writeError(w, errInternal, what)
}
