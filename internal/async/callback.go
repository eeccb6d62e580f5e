package async

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"nimbus/internal/queue"
)

// CallbackHeader names the URL that receives an async call's result.
const CallbackHeader = "X-Callback-Url"

// maxCallbackBody is how much of a function's response a callback carries;
// beyond it the body is cut and X-Nimbus-Body-Truncated says so.
const maxCallbackBody = 8 << 20

// callbackAttempts and callbackBackoff: a callback is tried 3 times, 1s
// then 2s apart, on a network error, a 5xx or a 429.
const callbackAttempts = 3

var callbackBackoff = time.Second

// callback posts an async call's outcome to its X-Callback-Url, as the
// OpenFaaS queue-worker does: the function's response headers and body, with
// X-Call-Id, X-Function-Name, X-Function-Status and X-Duration-Seconds. A
// dead-lettered call's callback also has X-Nimbus-Dead-Letter: true. It
// returns what became of the callback, for the call record ("" if none was
// asked for).
func (d *Dispatcher) callback(m queue.Message, res result, dead bool) string {
	target := m.Header.Get(CallbackHeader)
	if target == "" || d.Outbound == nil {
		return ""
	}
	var last string
	for try := 1; try <= callbackAttempts; try++ {
		if try > 1 {
			time.Sleep(callbackBackoff * time.Duration(try-1))
		}
		status, err := d.postCallback(target, m, res, dead)
		switch {
		case err != nil:
			last = err.Error()
		case status >= 500 || status == http.StatusTooManyRequests:
			last = fmt.Sprintf("answered %d", status)
		default:
			return fmt.Sprintf("delivered (%d)", status)
		}
	}
	d.logger().Warn("callback not delivered", "call", m.CallID, "url", target, "err", last)
	return fmt.Sprintf("failed after %d tries: %s", callbackAttempts, last)
}

func (d *Dispatcher) postCallback(target string, m queue.Message, res result, dead bool) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(res.body))
	if err != nil {
		return 0, err
	}
	for k, v := range res.header {
		if k != "Content-Length" && k != "Transfer-Encoding" && k != "Connection" {
			req.Header[k] = v
		}
	}
	req.Header.Set("X-Call-Id", m.CallID)
	req.Header.Set("X-Function-Name", m.Function)
	req.Header.Set("X-Function-Status", strconv.Itoa(res.status))
	req.Header.Set("X-Duration-Seconds", strconv.FormatFloat(res.took.Seconds(), 'f', 6, 64))
	if dead {
		req.Header.Set("X-Nimbus-Dead-Letter", "true")
	}
	if res.cut {
		req.Header.Set("X-Nimbus-Body-Truncated", "true")
	}
	resp, err := d.Outbound.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
