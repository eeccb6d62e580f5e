package lambdaapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/archive"
	"nimbus/internal/function"
	"nimbus/internal/store"
)

// MaxCodeBody bounds a CreateFunction or UpdateFunctionCode body: Lambda
// takes a zip of up to 50 MB inline, base64 in JSON.
const MaxCodeBody = 70 << 20

// Runtimes that run here: a bootstrap program, as provided.al2023 runs it.
var Runtimes = []string{"provided.al2023", "provided.al2", "provided"}

// FunctionConfiguration is Lambda's description of a function.
type FunctionConfiguration struct {
	FunctionName  string       `json:"FunctionName"`
	FunctionArn   string       `json:"FunctionArn"`
	Runtime       string       `json:"Runtime"`
	Role          string       `json:"Role,omitempty"`
	Handler       string       `json:"Handler"`
	CodeSize      int64        `json:"CodeSize"`
	CodeSha256    string       `json:"CodeSha256,omitempty"`
	Description   string       `json:"Description,omitempty"`
	Timeout       int          `json:"Timeout"`
	MemorySize    int          `json:"MemorySize"`
	LastModified  string       `json:"LastModified"`
	Version       string       `json:"Version"`
	Environment   *Environment `json:"Environment,omitempty"`
	PackageType   string       `json:"PackageType"`
	State         string       `json:"State"`
	LastUpdate    string       `json:"LastUpdateStatus"`
	Architectures []string     `json:"Architectures"`
}

// Environment is a function's variables.
type Environment struct {
	Variables map[string]string `json:"Variables"`
}

// Annotations keep what Lambda has and a nimbus spec does not.
const (
	annRuntime     = "nimbus.dev/lambda.runtime"
	annRole        = "nimbus.dev/lambda.role"
	annDescription = "nimbus.dev/lambda.description"
	annCodeSha256  = "nimbus.dev/lambda.code-sha256"
	annCodeSize    = "nimbus.dev/lambda.code-size"
)

// configOf is Lambda's description of a function, as key names it. The
// handler is kept in the function's env as _HANDLER (Lambda's name for
// it); it is not listed among the variables.
func configOf(key store.AccessKey, rec store.Record) FunctionConfiguration {
	fn := rec.Function
	vars := map[string]string{}
	for k, v := range fn.Env {
		if k != "_HANDLER" {
			vars[k] = v
		}
	}
	size, _ := strconv.ParseInt(fn.Annotations[annCodeSize], 10, 64)
	rt := fn.Annotations[annRuntime]
	if rt == "" {
		rt = "provided.al2023"
	}
	name, version := fn.LambdaName(), fn.LambdaVersion()
	arn := ARN(key, fn.Namespace, name)
	if fn.VersionOf != "" {
		arn += ":" + version
	}
	return FunctionConfiguration{
		FunctionName: LambdaName(key, fn.Namespace, name), FunctionArn: arn,
		Runtime: rt, Role: fn.Annotations[annRole], Handler: fn.LambdaHandler(), CodeSize: size, CodeSha256: fn.Annotations[annCodeSha256],
		Description: fn.Annotations[annDescription], Timeout: int(time.Duration(fn.Timeout).Seconds()), MemorySize: int(fn.LambdaMemoryMiB()),
		LastModified: rec.Updated.UTC().Format("2006-01-02T15:04:05.000+0000"), Version: version,
		Environment: &Environment{Variables: vars}, PackageType: "Zip", State: "Active", LastUpdate: "Successful",
		Architectures: []string{"x86_64"},
	}
}

// createRequest is CreateFunction's body (what nimbus uses of it).
type createRequest struct {
	FunctionName string
	Runtime      string
	Role         string
	Handler      string
	Description  string
	Timeout      *int
	MemorySize   *int
	Environment  *Environment
	Code         struct {
		ZipFile  []byte
		S3Bucket string
		ImageUri string
	}
	PackageType string
	Publish     bool
}

// deployError maps a deploy's failure to Lambda's errors.
func deployError(err error, arn string) *apiErr {
	switch {
	case errors.Is(err, store.ErrExists):
		return &apiErr{http.StatusConflict, "ResourceConflictException", "Function already exist: " + arn}
	case errors.Is(err, store.ErrNotFound):
		return &apiErr{http.StatusNotFound, "ResourceNotFoundException", "Function not found: " + arn}
	case errors.Is(err, store.ErrConflict):
		return &apiErr{http.StatusConflict, "ResourceConflictException", "the function was changed concurrently; retry"}
	case errors.Is(err, store.ErrUnavailable):
		return &apiErr{http.StatusServiceUnavailable, "ServiceException", "the store is unavailable; retry shortly"}
	}
	return &apiErr{http.StatusBadRequest, "InvalidParameterValueException", err.Error()}
}

// code turns an inline zip into a stored package.
func (h *Handler) code(ctx context.Context, zipped []byte) (digest string, sha string, aerr *apiErr) {
	if len(zipped) == 0 {
		return "", "", &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "Code.ZipFile is required (S3 and container images are not served here): aws lambda create-function --zip-file fileb://function.zip"}
	}
	tgz, err := archive.FromZip(zipped)
	if err != nil {
		return "", "", &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "Could not unzip uploaded file: " + err.Error()}
	}
	digest, err = h.o.StorePackage(ctx, tgz)
	if err != nil {
		if archive.IsRefused(err) {
			return "", "", &apiErr{http.StatusBadRequest, "InvalidParameterValueException", err.Error()}
		}
		return "", "", &apiErr{http.StatusServiceUnavailable, "ServiceException", "the code was not stored: " + err.Error()}
	}
	sum := sha256.Sum256(zipped)
	return digest, base64.StdEncoding.EncodeToString(sum[:]), nil
}

// apply sets the configuration fields a request gave onto fn.
func apply(fn *function.Function, timeout, memory *int, env *Environment, handler, description, role string) *apiErr {
	if timeout != nil {
		if *timeout < 1 || *timeout > 900 {
			return &apiErr{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("Timeout %d: use 1 to 900 seconds", *timeout)}
		}
		fn.Timeout = function.Duration(time.Duration(*timeout) * time.Second)
	}
	if memory != nil {
		if *memory < 128 || *memory > 10240 {
			return &apiErr{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("MemorySize %d: use 128 to 10240 MB", *memory)}
		}
		fn.Limits.Memory = strconv.Itoa(*memory) + "Mi"
	}
	if env != nil {
		keep := fn.Env["_HANDLER"]
		fn.Env = map[string]string{}
		for k, v := range env.Variables {
			fn.Env[k] = v
		}
		if keep != "" {
			fn.Env["_HANDLER"] = keep
		}
	}
	if fn.Annotations == nil {
		fn.Annotations = map[string]string{}
	}
	if handler != "" {
		if fn.Env == nil {
			fn.Env = map[string]string{}
		}
		fn.Env["_HANDLER"] = handler
	}
	if description != "" {
		fn.Annotations[annDescription] = description
	}
	if role != "" {
		fn.Annotations[annRole] = role
	}
	return nil
}

func (h *Handler) createFunction(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	var req createRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "the body is not CreateFunction's JSON: " + err.Error()})
		return
	}
	ns, name, _, aerr := resolve(c.key, req.FunctionName)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	if req.Code.S3Bucket != "" {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "Code.S3Bucket: nimbus reads no S3; give the zip as Code.ZipFile (aws lambda create-function --zip-file fileb://function.zip)"})
		return
	}
	if req.PackageType == "Image" || req.Code.ImageUri != "" {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "container image functions are not served here yet: give Code.ZipFile with a bootstrap and Runtime provided.al2023"})
		return
	}
	if !slices.Contains(Runtimes, req.Runtime) {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("Runtime %q does not run here yet: use %s (a bootstrap program, e.g. aws-lambda-go built as bootstrap)", req.Runtime, strings.Join(Runtimes, ", "))})
		return
	}
	digest, sha, aerr := h.code(r.Context(), req.Code.ZipFile)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	fn := function.Function{Name: name, Namespace: ns, Runtime: function.RuntimeProcess, Protocol: function.ProtocolLambda,
		Command: []string{"./bootstrap"}, Package: digest,
		Annotations: map[string]string{annRuntime: req.Runtime, annCodeSha256: sha, annCodeSize: strconv.Itoa(len(req.Code.ZipFile))}}
	if aerr := apply(&fn, req.Timeout, req.MemorySize, req.Environment, req.Handler, req.Description, req.Role); aerr != nil {
		writeErr(w, aerr)
		return
	}
	if req.Timeout == nil {
		fn.Timeout = function.Duration(3 * time.Second) // Lambda's default
	}
	rec, err := h.o.Deploy(r.Context(), fn, true)
	if err != nil {
		writeErr(w, deployError(err, ARN(c.key, ns, name)))
		return
	}
	h.o.Logger.Info("lambda function created", "function", fn.Key(), "key", c.key.ID)
	h.published(w, r, c, rec, req.Publish, http.StatusCreated)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// stored finds the function a request names, in the key's namespaces:
// $LATEST (a qualifier is refused).
func (h *Handler) stored(w http.ResponseWriter, r *http.Request) (*caller, store.Record, bool) {
	return h.storedAt(w, r, false)
}

// storedAt is stored; with qualified, the version a qualifier (in the
// ARN, or ?Qualifier=) names.
func (h *Handler) storedAt(w http.ResponseWriter, r *http.Request, qualified bool) (*caller, store.Record, bool) {
	c := callerOf(r)
	ns, name, qualifier, aerr := resolve(c.key, r.PathValue("name"))
	if q := r.URL.Query().Get("Qualifier"); q != "" && aerr == nil {
		qualifier = q
	}
	target := name
	switch {
	case aerr != nil:
	case qualified:
		target, _, aerr = h.qualified(r, c, ns, name, qualifier)
	case qualifier != "" && qualifier != "$LATEST":
		aerr = &apiErr{http.StatusNotFound, "ResourceNotFoundException", fmt.Sprintf("Function not found: %s:%s (this operation acts on $LATEST)", ARN(c.key, ns, name), qualifier)}
	}
	if aerr != nil {
		writeErr(w, aerr)
		return nil, store.Record{}, false
	}
	rec, err := h.o.Store.Get(r.Context(), ns, target)
	if err != nil {
		writeErr(w, deployError(err, ARN(c.key, ns, name)))
		return nil, store.Record{}, false
	}
	return c, rec, true
}

func (h *Handler) getFunction(w http.ResponseWriter, r *http.Request) {
	c, rec, ok := h.storedAt(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"Configuration": configOf(c.key, rec),
		"Code": map[string]string{"RepositoryType": "nimbus", "Location": "/v1/packages/" + rec.Function.Package}})
}

func (h *Handler) getConfiguration(w http.ResponseWriter, r *http.Request) {
	if c, rec, ok := h.storedAt(w, r, true); ok {
		writeJSON(w, http.StatusOK, configOf(c.key, rec))
	}
}

func (h *Handler) listFunctions(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	recs, err := h.o.Store.List(r.Context(), "")
	if err != nil {
		writeErr(w, deployError(err, ""))
		return
	}
	out := []FunctionConfiguration{}
	for _, rec := range recs {
		fn := rec.Function
		if fn.Protocol != function.ProtocolLambda || fn.VersionOf != "" {
			continue // only what Lambda's clients can run as Lambda functions, at $LATEST
		}
		if !slices.Contains(c.key.Namespaces, "*") && !slices.Contains(c.key.Namespaces, fn.Namespace) {
			continue
		}
		out = append(out, configOf(c.key, rec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"Functions": out})
}

func (h *Handler) updateCode(w http.ResponseWriter, r *http.Request) {
	c, rec, ok := h.stored(w, r)
	if !ok {
		return
	}
	var req struct {
		ZipFile []byte
		Publish bool
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "the body is not UpdateFunctionCode's JSON: " + err.Error()})
		return
	}
	digest, sha, aerr := h.code(r.Context(), req.ZipFile)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	fn := rec.Function
	fn.Package = digest
	fn.Annotations = cloneMap(fn.Annotations)
	fn.Annotations[annCodeSha256], fn.Annotations[annCodeSize] = sha, strconv.Itoa(len(req.ZipFile))
	h.update(w, r, c, fn, req.Publish)
}

func (h *Handler) updateConfiguration(w http.ResponseWriter, r *http.Request) {
	c, rec, ok := h.stored(w, r)
	if !ok {
		return
	}
	var req struct {
		Timeout, MemorySize        *int
		Environment                *Environment
		Handler, Description, Role string
		Runtime                    string
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "the body is not UpdateFunctionConfiguration's JSON: " + err.Error()})
		return
	}
	if req.Runtime != "" && !slices.Contains(Runtimes, req.Runtime) {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("Runtime %q does not run here yet: use %s", req.Runtime, strings.Join(Runtimes, ", "))})
		return
	}
	fn := rec.Function
	fn.Env, fn.Annotations = cloneMap(fn.Env), cloneMap(fn.Annotations)
	if aerr := apply(&fn, req.Timeout, req.MemorySize, req.Environment, req.Handler, req.Description, req.Role); aerr != nil {
		writeErr(w, aerr)
		return
	}
	if req.Runtime != "" {
		fn.Annotations[annRuntime] = req.Runtime
	}
	h.update(w, r, c, fn, false)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request, c *caller, fn function.Function, publish bool) {
	rec, err := h.o.Deploy(r.Context(), fn, false)
	if err != nil {
		writeErr(w, deployError(err, ARN(c.key, fn.Namespace, fn.Name)))
		return
	}
	h.published(w, r, c, rec, publish, http.StatusOK)
}

func (h *Handler) deleteFunction(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("Qualifier")
	if _, _, arnQ, aerr := resolve(callerOf(r).key, r.PathValue("name")); aerr == nil && q == "" {
		q = arnQ
	}
	if q != "" && q != "$LATEST" && h.o.Versions != nil {
		h.deleteVersion(w, r, q)
		return
	}
	c, rec, ok := h.stored(w, r)
	if !ok {
		return
	}
	if err := h.o.Delete(r.Context(), rec.Function.Namespace, rec.Function.Name); err != nil {
		writeErr(w, deployError(err, ARN(c.key, rec.Function.Namespace, rec.Function.Name)))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// putEventInvokeConfig maps Lambda's async settings onto nimbus's.
func (h *Handler) putEventInvokeConfig(w http.ResponseWriter, r *http.Request) {
	c, rec, ok := h.stored(w, r)
	if !ok {
		return
	}
	var req struct {
		MaximumRetryAttempts     *int
		MaximumEventAgeInSeconds *int
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", "the body is not PutFunctionEventInvokeConfig's JSON: " + err.Error()})
		return
	}
	fn := rec.Function
	if req.MaximumRetryAttempts != nil {
		if *req.MaximumRetryAttempts < 0 || *req.MaximumRetryAttempts > 2 {
			writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("MaximumRetryAttempts %d: use 0 to 2", *req.MaximumRetryAttempts)})
			return
		}
		fn.Async.MaxRetries = req.MaximumRetryAttempts
	}
	if req.MaximumEventAgeInSeconds != nil {
		if *req.MaximumEventAgeInSeconds < 60 || *req.MaximumEventAgeInSeconds > 21600 {
			writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("MaximumEventAgeInSeconds %d: use 60 to 21600", *req.MaximumEventAgeInSeconds)})
			return
		}
		fn.Async.MaxEventAge = function.Duration(time.Duration(*req.MaximumEventAgeInSeconds) * time.Second)
	}
	rec, err := h.o.Deploy(r.Context(), fn, false)
	if err != nil {
		writeErr(w, deployError(err, ARN(c.key, fn.Namespace, fn.Name)))
		return
	}
	out := map[string]any{"FunctionArn": ARN(c.key, fn.Namespace, fn.Name) + ":$LATEST",
		"LastModified": float64(rec.Updated.UnixMilli()) / 1000, "DestinationConfig": map[string]any{}}
	if rec.Function.Async.MaxRetries != nil {
		out["MaximumRetryAttempts"] = *rec.Function.Async.MaxRetries
	}
	out["MaximumEventAgeInSeconds"] = int(time.Duration(rec.Function.Async.MaxEventAge).Seconds())
	writeJSON(w, http.StatusOK, out)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// deleteVersion is DeleteFunction with a version's number as qualifier.
func (h *Handler) deleteVersion(w http.ResponseWriter, r *http.Request, qualifier string) {
	c := callerOf(r)
	ns, name, _, aerr := resolve(c.key, r.PathValue("name"))
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	n, err := strconv.Atoi(qualifier)
	if err != nil || n < 1 {
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("Qualifier %q: DeleteFunction deletes a version by its number; delete an alias with DeleteAlias", qualifier)})
		return
	}
	if err := h.o.Versions.DeleteVersion(r.Context(), ns, name, n); err != nil {
		writeErr(w, versionError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// published answers a create or update with Publish set: the version it
// published, else the function.
func (h *Handler) published(w http.ResponseWriter, r *http.Request, c *caller, rec store.Record, publish bool, status int) {
	if publish && h.o.Versions != nil {
		v, _, err := h.o.Versions.Publish(r.Context(), rec.Function.Namespace, rec.Function.Name, map[string]string{annDescription: ""})
		if err != nil {
			writeErr(w, versionError(err))
			return
		}
		rec = v
	}
	writeJSON(w, status, configOf(c.key, rec))
}
