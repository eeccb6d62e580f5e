package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// bareColdStart execs the fn binary and polls it over fresh connections every
// 200µs until it answers 200: the floor any platform's cold start sits on.
func bareColdStart(fnBin string, env []string) (time.Duration, error) {
	port := freePort()
	cmd := exec.Command(fnBin)
	cmd.Env = append(env, "PORT="+strconv.Itoa(port))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	req := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for time.Since(t0) < 10*time.Second {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Write([]byte(req))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				c.Close()
				if resp.StatusCode == 200 {
					return time.Since(t0), nil
				}
			}
			c.Close()
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("fn did not answer within 10s")
}

// nimbusColdStart times a request to a function scaled to zero.
func nimbusColdStart(n *nimbusProc, name string) (time.Duration, error) {
	if err := n.waitInstances(name, 0, 10*time.Second); err != nil {
		return 0, err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t0 := time.Now()
	resp, err := client.Post(n.url+"/function/"+name, "text/plain", strings.NewReader("hello\n"))
	if err != nil {
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	if resp.StatusCode != 200 || string(b) != "hello\n" {
		return 0, fmt.Errorf("cold call: %d %q", resp.StatusCode, b)
	}
	return took, nil
}

// bareStdio is one fork+exec of the fn binary in stdio mode.
func bareStdio(fnBin string) (time.Duration, error) {
	t0 := time.Now()
	cmd := exec.Command(fnBin, "-stdio")
	cmd.Stdin = strings.NewReader("hello\n")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil || string(out) != "hello\n" {
		return 0, fmt.Errorf("bare stdio: %q %v", out, err)
	}
	return time.Since(t0), nil
}

// rawClient sends one fixed request over a kept-alive connection with no
// client machinery around it, so a call costs the client about what wrk's
// does and the comparison with a bare fork+exec is about nimbus alone.
type rawClient struct {
	addr, req string
	body      string
	c         net.Conn
	br        *bufio.Reader
}

func newRawClient(addr, path string) *rawClient { return newRawClientBody(addr, path, "hello\n") }

// newRawClientBody sends body, and expects it back.
func newRawClientBody(addr, path, body string) *rawClient {
	return &rawClient{addr: addr, body: body, req: "POST " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body}
}

// call times one request and checks the answer.
func (r *rawClient) call() (time.Duration, error) {
	if r.c == nil {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			return 0, err
		}
		r.c, r.br = c, bufio.NewReader(c)
	}
	t0 := time.Now()
	if _, err := r.c.Write([]byte(r.req)); err != nil {
		r.c.Close()
		r.c = nil
		return 0, err
	}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.c.Close()
		r.c = nil
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	if resp.StatusCode != 200 || string(b) != r.body {
		return 0, fmt.Errorf("call: %d %q", resp.StatusCode, b)
	}
	return took, nil
}

// series runs f n times and returns the successful durations.
func series(n int, f func() (time.Duration, error)) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		d, err := f()
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIMBUS_") {
			env = append(env, kv)
		}
	}
	return env
}
