package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/reqbody"
	"nimbus/internal/store"
)

// apiError is a sentinel with a status and a stable code.
type apiError struct {
	status int
	code   string
}

func (e *apiError) Error() string { return e.code }

// The codes clients may rely on.
var (
	errBadRequest         = &apiError{http.StatusBadRequest, "invalid_request"}
	errInvalidSpec        = &apiError{http.StatusBadRequest, "invalid_spec"}
	errNoPackage          = &apiError{http.StatusBadRequest, "package_not_found"}
	errUnauthorized       = &apiError{http.StatusUnauthorized, "unauthorized"}
	errNotFound           = &apiError{http.StatusNotFound, "function_not_found"}
	errNoRoute            = &apiError{http.StatusNotFound, "route_not_found"}
	errConflict           = &apiError{http.StatusConflict, "conflict"}
	errTooLarge           = &apiError{http.StatusRequestEntityTooLarge, "body_too_large"}
	errUnavailable        = &apiError{http.StatusServiceUnavailable, "store_unavailable"}
	errInternal           = &apiError{http.StatusInternalServerError, "internal"}
	errRuntimeDisabled    = &apiError{http.StatusBadRequest, "runtime_unavailable"}
	errImage              = &apiError{http.StatusBadRequest, "image_unavailable"}
	errSecretNotFound     = &apiError{http.StatusNotFound, "secret_not_found"}
	errDeadLetterNotFound = &apiError{http.StatusNotFound, "dead_letter_not_found"}
	errMissingSecret      = &apiError{http.StatusBadRequest, "secret_not_found"}
	errCallNotFound       = &apiError{http.StatusNotFound, "call_not_found"}
	errTriggerNotFound    = &apiError{http.StatusNotFound, "trigger_not_found"}
	errKeyNotFound        = &apiError{http.StatusNotFound, "key_not_found"}
	errBodyTimeout        = &apiError{http.StatusRequestTimeout, "body_timeout"}
	errBadPackage         = &apiError{http.StatusBadRequest, "invalid_package"}
	errPackageNotFound    = &apiError{http.StatusNotFound, "package_not_found"}
	errNoSpace            = &apiError{http.StatusInsufficientStorage, "insufficient_storage"}
	errVersionImmutable   = &apiError{http.StatusConflict, "version_immutable"}
	errVersionNotFound    = &apiError{http.StatusNotFound, "version_not_found"}
	errVersionInUse       = &apiError{http.StatusConflict, "version_in_use"}
)

// writeBodyError answers a body that could not be read: 413 past limit,
// 408 when it did not arrive in time, else 400.
func writeBodyError(w http.ResponseWriter, err error, limit int64, what string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, errTooLarge, fmt.Sprintf("a %s may be at most %d bytes", what, limit))
	case reqbody.IsTimeout(err):
		w.Header().Set("Connection", "close")
		writeError(w, errBodyTimeout, "the request body did not arrive in time (the server's body deadline): send it whole, or faster")
	default:
		writeError(w, errBadRequest, "reading the request body failed: "+err.Error())
	}
}

// errorBody is the JSON shape of every error.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, e *apiError, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = e.code, msg
	writeJSON(w, e.status, b)
}

func writeFieldError(w http.ResponseWriter, fe *function.FieldError) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Field = errInvalidSpec.code, fe.Error(), fe.Field
	writeJSON(w, errInvalidSpec.status, b)
}

// writeStoreError maps a store error to an answer; the detail of unexpected
// errors stays in the server's log, not in the response.
func writeStoreError(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, errNotFound, what+" not found")
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		writeError(w, errConflict, what+" was changed concurrently; retry")
	case errors.Is(err, store.ErrUnavailable):
		writeError(w, errUnavailable, "the store is unavailable; retry shortly")
	default:
		writeError(w, errInternal, "internal error while handling "+what)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

var timeZero time.Time

func nowUTC() time.Time { return time.Now().UTC() }
