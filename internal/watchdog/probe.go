package watchdog

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// ErrExited is returned by WaitReady when the program exited before it
// answered.
var ErrExited = errors.New("exited before it was ready")

// Probe reports whether an HTTP GET of path on addr gets any answer: a TCP
// connect first (cheap when nothing listens yet), then the request.
func Probe(addr, path string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: nimbus-probe\r\nConnection: close\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// WaitReady probes addr until it answers, ctx ends, or exited is closed. The
// interval starts at 500µs and grows to 20ms: readiness is noticed within a
// millisecond or so of a fast program's start, without busy-polling a slow one.
func WaitReady(ctx context.Context, addr, path string, exited <-chan struct{}) error {
	interval := 500 * time.Microsecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return ErrExited
		case <-timer.C:
		}
		if Probe(addr, path) {
			return nil
		}
		interval = min(interval*3/2, 20*time.Millisecond)
		timer.Reset(interval)
	}
}
