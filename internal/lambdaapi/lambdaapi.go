// Package lambdaapi serves the AWS Lambda Invoke API (2015-03-31) for
// nimbus functions, so that AWS SDKs and the aws CLI call them with only
// an endpoint change. Requests are signed with AWS Signature Version 4 by
// access keys nimbus manages (store.Keys); a key acts only in its
// namespaces. Invoke runs the function through the gateway
// (RequestResponse), queues it durably (Event) or only checks that it
// could (DryRun); answers and errors are in Lambda's shapes.
//
// Names: a Lambda function name NAME is the nimbus function NAME in the
// key's first namespace ("default" for a key of every namespace); a
// function of another namespace is NAMESPACE_NAME (nimbus names never hold
// "_", Lambda's may). Either may be given as an ARN,
// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER].
package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/sigv4"
	"nimbus/internal/store"
	"nimbus/internal/versions"
	"nimbus/internal/watchdog"
)

// MaxPayload bounds a synchronous invocation's payload, as Lambda (6 MB);
// MaxEventPayload an asynchronous one's (1 MB, as Lambda documents for
// Invoke with InvocationType Event).
const (
	MaxPayload      = 6 << 20
	MaxEventPayload = 1 << 20
)

// Options configure the API.
type Options struct {
	Store store.Store
	// Invoke serves /function/NAME.NS (the gateway); Async serves
	// /async-function/NAME.NS (the durable queue).
	Invoke, Async http.Handler
	// Deploy stores a function through nimbus's one deploy path (create:
	// fail if it exists; else it must exist); StorePackage checks and
	// stores a package (a gzipped tar) and returns its digest; Delete
	// removes a function. Without them only Invoke is served.
	Deploy       func(ctx context.Context, fn function.Function, create bool) (store.Record, error)
	StorePackage func(ctx context.Context, tgz []byte) (string, error)
	Delete       func(ctx context.Context, namespace, name string) error
	// Versions publishes, resolves and aliases versions; without it only
	// $LATEST is served.
	Versions *versions.Manager
	// Now is the clock signatures are checked against (time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler is the Lambda API.
type Handler struct {
	o   Options
	mux *http.ServeMux
}

// New builds the handler.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{o: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", h.invoke)
	if o.Deploy != nil && o.StorePackage != nil && o.Delete != nil {
		h.mux.HandleFunc("POST /2015-03-31/functions", h.createFunction)
		h.mux.HandleFunc("POST /2015-03-31/functions/{$}", h.createFunction)
		// Both forms: the SDKs send no trailing slash, and a redirect
		// would break the signature.
		h.mux.HandleFunc("GET /2015-03-31/functions", h.listFunctions)
		h.mux.HandleFunc("GET /2015-03-31/functions/{$}", h.listFunctions)
		h.mux.HandleFunc("GET /2015-03-31/functions/{name}", h.getFunction)
		h.mux.HandleFunc("GET /2015-03-31/functions/{name}/configuration", h.getConfiguration)
		h.mux.HandleFunc("PUT /2015-03-31/functions/{name}/code", h.updateCode)
		h.mux.HandleFunc("PUT /2015-03-31/functions/{name}/configuration", h.updateConfiguration)
		h.mux.HandleFunc("DELETE /2015-03-31/functions/{name}", h.deleteFunction)
		h.mux.HandleFunc("PUT /2019-09-25/functions/{name}/event-invoke-config", h.putEventInvokeConfig)
	}
	if o.Versions != nil {
		h.mux.HandleFunc("POST /2015-03-31/functions/{name}/versions", h.publishVersion)
		h.mux.HandleFunc("GET /2015-03-31/functions/{name}/versions", h.listVersions)
		h.mux.HandleFunc("POST /2015-03-31/functions/{name}/aliases", h.createAlias)
		h.mux.HandleFunc("GET /2015-03-31/functions/{name}/aliases", h.listAliases)
		h.mux.HandleFunc("GET /2015-03-31/functions/{name}/aliases/{alias}", h.getAlias)
		h.mux.HandleFunc("PUT /2015-03-31/functions/{name}/aliases/{alias}", h.updateAlias)
		h.mux.HandleFunc("DELETE /2015-03-31/functions/{name}/aliases/{alias}", h.deleteAlias)
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, &apiErr{http.StatusNotFound, "UnknownOperationException", "nimbus does not serve this Lambda operation: " + r.Method + " " + r.URL.Path})
	})
	return h
}

// apiErr is an error in Lambda's shape: the status, the type the SDKs
// read from X-Amzn-ErrorType, and a message.
type apiErr struct {
	status int
	typ    string
	msg    string
}

func (e *apiErr) Error() string { return e.typ + ": " + e.msg }

func writeErr(w http.ResponseWriter, e *apiErr) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	w.WriteHeader(e.status)
	typ := "User"
	if e.status >= 500 {
		typ = "Service"
	}
	json.NewEncoder(w).Encode(map[string]string{"Type": typ, "message": e.msg})
}

// caller is a verified request: its key and body.
type caller struct {
	key  store.AccessKey
	body []byte
}

// ServeHTTP checks the signature, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit := int64(MaxPayload)
	if r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/functions") || strings.HasSuffix(r.URL.Path, "/code") {
		limit = MaxCodeBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit+1))
	if err != nil || int64(len(body)) > limit {
		writeErr(w, &apiErr{http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes for this operation", limit)})
		return
	}
	var key store.AccessKey
	lookup := func(id string) (string, bool) {
		k, err := h.o.Store.Key(r.Context(), id)
		if err != nil {
			return "", false
		}
		key = k
		return k.Secret, true
	}
	if _, err := sigv4.Verify(r, body, "lambda", lookup, h.o.Now()); err != nil {
		switch {
		case errors.Is(err, sigv4.ErrMissing):
			writeErr(w, &apiErr{http.StatusForbidden, "MissingAuthenticationTokenException", err.Error()})
		case errors.Is(err, sigv4.ErrUnknown):
			writeErr(w, &apiErr{http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid: " + err.Error()})
		default:
			writeErr(w, &apiErr{http.StatusForbidden, "InvalidSignatureException", err.Error()})
		}
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, &caller{key: key, body: body}))
	h.mux.ServeHTTP(w, r)
}

type callerKey struct{}

func callerOf(r *http.Request) *caller { return r.Context().Value(callerKey{}).(*caller) }

// resolve maps a Lambda function name or ARN to a nimbus function the key
// may act on, and its qualifier.
func resolve(key store.AccessKey, name string) (ns, fn, qualifier string, err *apiErr) {
	if rest, ok := strings.CutPrefix(name, "arn:aws:lambda:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) < 4 || len(parts) > 5 || parts[2] != "function" {
			return "", "", "", &apiErr{http.StatusBadRequest, "ValidationException", fmt.Sprintf("%q is not a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])", name)}
		}
		name = parts[3]
		if len(parts) == 5 {
			qualifier = parts[4]
		}
	}
	ns = "default"
	if len(key.Namespaces) > 0 && key.Namespaces[0] != "*" {
		ns = key.Namespaces[0]
	}
	fn = name
	if before, after, ok := strings.Cut(name, "_"); ok {
		ns, fn = before, after
	}
	if function.ValidateName("name", fn) != nil || function.ValidateName("namespace", ns) != nil || function.IsVersionName(fn) {
		return "", "", "", &apiErr{http.StatusBadRequest, "ValidationException",
			fmt.Sprintf("%q names no nimbus function: use NAME, or NAMESPACE_NAME for another namespace (lower-case letters, digits and -)", name)}
	}
	if !slices.Contains(key.Namespaces, "*") && !slices.Contains(key.Namespaces, ns) {
		return "", "", "", &apiErr{http.StatusForbidden, "AccessDeniedException",
			fmt.Sprintf("access key %s may not act in namespace %q (it may in %s)", key.ID, ns, strings.Join(key.Namespaces, ", "))}
	}
	return ns, fn, qualifier, nil
}

// ARN is a function's ARN as this API names it for key.
func ARN(key store.AccessKey, ns, name string) string {
	return function.LambdaARN(LambdaName(key, ns, name))
}

// LambdaName is a nimbus function's Lambda name for key.
func LambdaName(key store.AccessKey, ns, name string) string {
	first := "default"
	if len(key.Namespaces) > 0 && key.Namespaces[0] != "*" {
		first = key.Namespaces[0]
	}
	if ns == first {
		return name
	}
	return ns + "_" + name
}

// invoke is Invoke: RequestResponse, Event or DryRun.
func (h *Handler) invoke(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	ns, name, qualifier, aerr := resolve(c.key, r.PathValue("name"))
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		qualifier = q
	}
	target, version, aerr := h.qualified(r, c, ns, name, qualifier)
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	rec, err := h.o.Store.Get(r.Context(), ns, target)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeErr(w, &apiErr{http.StatusNotFound, "ResourceNotFoundException", "Function not found: " + ARN(c.key, ns, name)})
			return
		}
		writeErr(w, &apiErr{http.StatusServiceUnavailable, "ServiceException", "the store is unavailable; retry shortly"})
		return
	}
	w.Header().Set("X-Amz-Executed-Version", version)
	typ := r.Header.Get("X-Amz-Invocation-Type")
	switch typ {
	case "", "RequestResponse":
		h.requestResponse(w, r, c, rec)
	case "Event":
		h.event(w, r, c, rec)
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
	default:
		writeErr(w, &apiErr{http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("X-Amz-Invocation-Type %q: use RequestResponse, Event or DryRun", typ)})
	}
}

// recorder keeps an answer of at most MaxPayload bytes (Lambda's limit
// for a synchronous response); past it, the rest is dropped and over set.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	over   bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if room := MaxPayload - r.body.Len(); len(p) > room {
		r.body.Write(p[:max(room, 0)])
		r.over = true
		return len(p), nil
	}
	return r.body.Write(p)
}

// through sends the payload to one of nimbus's invocation routes and
// records the answer.
func through(h http.Handler, r *http.Request, path string, body []byte) *recorder {
	ctx := r.Context()
	if strings.EqualFold(r.Header.Get("X-Amz-Log-Type"), "Tail") {
		ctx = watchdog.WithLogTail(ctx) // the signed caller's, never a header's
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if v := r.Header.Get("X-Amz-Client-Context"); v != "" {
		req.Header.Set("X-Amz-Client-Context", v)
	}
	if v := r.Header.Get("X-Amzn-Trace-Id"); v != "" {
		req.Header.Set("X-Amzn-Trace-Id", v)
	}
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return rec
}

func (h *Handler) requestResponse(w http.ResponseWriter, r *http.Request, c *caller, rec store.Record) {
	fn := rec.Function
	res := through(h.o.Invoke, r, "/function/"+fn.Name+"."+fn.Namespace, c.body)
	out := w.Header()
	if id := res.Header().Get("X-Call-Id"); id != "" {
		out.Set("X-Amz-Request-Id", id)
		out.Set("X-Call-Id", id)
	}
	if v := res.Header().Get("X-Amz-Log-Result"); v != "" && strings.EqualFold(r.Header.Get("X-Amz-Log-Type"), "Tail") {
		out.Set("X-Amz-Log-Result", v)
	}
	body := res.body.Bytes()
	switch status := res.code; {
	case res.over:
		functionError(w, fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxPayload), "Function.ResponseSizeTooLarge")
	case status < 400:
		out.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	case status == http.StatusTooManyRequests:
		writeErr(w, &apiErr{http.StatusTooManyRequests, "TooManyRequestsException", "Rate Exceeded: " + strings.TrimSpace(string(body))})
	case status == http.StatusGatewayTimeout:
		functionError(w, fmt.Sprintf("Task timed out after %.2f seconds", time.Duration(fn.Timeout).Seconds()), "Sandbox.Timedout")
	case status >= 500 && res.Header().Get("X-Amz-Function-Error") != "":
		// A Lambda handler's error, already in Lambda's shape.
		out.Set("Content-Type", "application/json")
		out.Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	case status >= 500:
		functionError(w, strings.TrimSpace(string(body)), "Function.Error"+strconv.Itoa(status))
	default:
		// A 4xx of the function itself is its answer.
		functionError(w, strings.TrimSpace(string(body)), "Function.Status"+strconv.Itoa(status))
	}
}

// functionError answers 200 with X-Amz-Function-Error, as Lambda does for
// an error of the function (not of the request).
func functionError(w http.ResponseWriter, msg, typ string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Function-Error", "Unhandled")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]string{"errorMessage": msg, "errorType": typ})
}

func (h *Handler) event(w http.ResponseWriter, r *http.Request, c *caller, rec store.Record) {
	if h.o.Async == nil {
		writeErr(w, &apiErr{http.StatusServiceUnavailable, "ServiceException", "asynchronous invocations are not enabled on this nimbus"})
		return
	}
	if len(c.body) > MaxEventPayload {
		writeErr(w, &apiErr{http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes for the Invoke operation with InvocationType Event", MaxEventPayload)})
		return
	}
	fn := rec.Function
	res := through(h.o.Async, r, "/async-function/"+fn.Name+"."+fn.Namespace, c.body)
	if res.code != http.StatusAccepted {
		writeErr(w, &apiErr{http.StatusServiceUnavailable, "ServiceException", "the invocation was not queued: " + strings.TrimSpace(res.body.String())})
		return
	}
	if id := res.Header().Get("X-Call-Id"); id != "" {
		w.Header().Set("X-Amz-Request-Id", id)
		w.Header().Set("X-Call-Id", id)
	}
	w.WriteHeader(http.StatusAccepted)
}
