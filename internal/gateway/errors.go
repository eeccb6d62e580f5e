package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Sentinel errors of the data path, each with a status and a stable code.
var (
	ErrNotFound    = errors.New("function not found")
	ErrOverloaded  = errors.New("function is at capacity and its queue is full")
	ErrStartFailed = errors.New("function failed to start")
	ErrNoInstance  = errors.New("no instance became ready in time")
	ErrTimeout     = errors.New("function timed out")
	ErrTooLarge    = errors.New("request body too large")
	ErrUpstream    = errors.New("function instance failed")
	ErrGone        = errors.New("function was deleted or updated")
	ErrBadRequest  = errors.New("bad request")
	ErrBodyTimeout = errors.New("request body not received in time")
)

type errInfo struct {
	status int
	code   string
}

var errTable = map[error]errInfo{
	ErrNotFound:    {http.StatusNotFound, "function_not_found"},
	ErrOverloaded:  {http.StatusTooManyRequests, "overloaded"},
	ErrStartFailed: {http.StatusServiceUnavailable, "start_failed"},
	ErrNoInstance:  {http.StatusGatewayTimeout, "cold_start_timeout"},
	ErrTimeout:     {http.StatusGatewayTimeout, "timeout"},
	ErrTooLarge:    {http.StatusRequestEntityTooLarge, "body_too_large"},
	ErrUpstream:    {http.StatusBadGateway, "instance_failed"},
	ErrGone:        {http.StatusServiceUnavailable, "function_gone"},
	ErrBadRequest:  {http.StatusBadRequest, "bad_request"},
	ErrBodyTimeout: {http.StatusRequestTimeout, "body_timeout"},
}

// writeError answers with the JSON error shape nimbus uses everywhere:
// {"error": {"code": "...", "message": "..."}}.
func writeError(w http.ResponseWriter, err error, msg string) int {
	info := errInfo{http.StatusInternalServerError, "internal"}
	for sentinel, i := range errTable {
		if errors.Is(err, sentinel) {
			info = i
			break
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if info.status == http.StatusTooManyRequests || info.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(1))
	}
	w.WriteHeader(info.status)
	body := struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{}
	body.Error.Code, body.Error.Message = info.code, msg
	json.NewEncoder(w).Encode(body)
	return info.status
}
