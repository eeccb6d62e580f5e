package gateway

import (
	"bytes"
	"net/http"
)

// Capture is a ResponseWriter for an in-process invocation (the async
// dispatcher's, the event gateway's): it keeps the status, the headers and
// up to Keep bytes of the body, and notes whether there was more.
type Capture struct {
	Keep   int
	Status int // 0 until written
	Body   bytes.Buffer
	Cut    bool // the body was longer than Keep
	header http.Header
}

// NewCapture returns a Capture keeping up to keep bytes of body.
func NewCapture(keep int) *Capture { return &Capture{Keep: keep, header: http.Header{}} }

func (c *Capture) Header() http.Header { return c.header }

func (c *Capture) WriteHeader(code int) {
	if c.Status == 0 {
		c.Status = code
	}
}

func (c *Capture) Write(p []byte) (int, error) {
	if c.Status == 0 {
		c.Status = http.StatusOK
	}
	room := c.Keep - c.Body.Len()
	if room < len(p) {
		c.Cut = true
	}
	if room > 0 {
		c.Body.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Flush makes streamed answers work; there is nothing to flush.
func (c *Capture) Flush() {}

// StatusCode is the status written, 200 if only a body was, or none.
func (c *Capture) StatusCode() int {
	if c.Status == 0 {
		return http.StatusOK
	}
	return c.Status
}
