package watchdog

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// slowReader is a body of unknown length, as aws-lambda-go's (its
// errorCapturingReader): Go's client sends it chunked, with the trailers
// it declares.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// clientRequests captures the bytes Go's http.Client sends for a Runtime
// API client's requests: the /next, a response posted as aws-lambda-go
// posts it (chunked, declaring the error trailers), an init error with a
// length.
func clientRequests(t testing.TB) [][]byte {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			b, _ := io.ReadAll(c) // until the deadline: the whole request
			c.Write([]byte("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			c.Close()
			got <- b
		}
	}()
	base := "http://" + ln.Addr().String() + "/pfx/2018-06-01/runtime/"
	next, _ := http.NewRequest(http.MethodGet, base+"invocation/next", nil)
	resp, _ := http.NewRequest(http.MethodPost, base+"invocation/8f0c1e2a-0b5e-4c1d-9a77-3f2f1c0d9e11/response", slowReader{strings.NewReader(`"hello"`)})
	resp.Header.Set("Content-Type", "application/json")
	resp.Trailer = http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
	initErr, _ := http.NewRequest(http.MethodPost, base+"init/error", strings.NewReader(`{"errorMessage":"boom","errorType":"Runtime.Boom"}`))
	initErr.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.Boom")
	var out [][]byte
	c := &http.Client{Timeout: 2 * time.Second}
	for _, r := range []*http.Request{next, resp, initErr} {
		res, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		out = append(out, <-got)
	}
	return out
}

// fastRead parses data with the fast path; ok false if it declined.
func fastRead(data []byte) (*http.Request, *bufio.Reader, bool) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	br.Peek(1)
	req, ok := parseAPIRequest(br)
	return req, br, ok
}

func TestAPIRequestFastPathTakesClientRequests(t *testing.T) {
	for _, b := range clientRequests(t) {
		req, _, ok := fastRead(b)
		if !ok {
			t.Fatalf("the fast path declined a request of Go's client:\n%s", b)
		}
		sameAsNetHTTP(t, b)
		t.Logf("%s %s: %d bytes", req.Method, req.URL.Path, len(b))
	}
}

func TestAPIRequestHostile(t *testing.T) {
	cases := map[string]string{
		"both lengths":      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"two lengths":       "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"signed length":     "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
		"folded header":     "POST /p HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\n b\r\nContent-Length: 3\r\n\r\nabc",
		"bare LF":           "POST /p HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc",
		"encoded path":      "GET /p%2F..%2Fq HTTP/1.1\r\nHost: x\r\n\r\n",
		"dot segments":      "GET /p/../q HTTP/1.1\r\nHost: x\r\n\r\n",
		"query":             "GET /p?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"gzip encoding":     "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"expect":            "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"NUL in a value":    "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
		"HTTP/1.0":          "GET /p HTTP/1.0\r\nHost: x\r\n\r\n",
		"head not buffered": "GET /p HTTP/1.1\r\nHost: x\r\n",
		"bad trailer key":   "POST /p HTTP/1.1\r\nHost: x\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	}
	for name, in := range cases {
		if _, br, ok := fastRead([]byte(in)); ok {
			t.Errorf("%s: the fast path took it", name)
		} else if rest, _ := io.ReadAll(br); string(rest) != in {
			t.Errorf("%s: declined after reading %d bytes", name, len(in)-len(rest))
		}
	}
	// Bodies that end short are errors, not answers.
	for name, in := range map[string]string{
		"short length":     "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
		"short chunk":      "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
		"no last chunk":    "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		"endless trailers": "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n",
	} {
		req, _, ok := fastRead([]byte(in))
		if !ok {
			t.Errorf("%s: declined", name)
			continue
		}
		if _, err := io.ReadAll(req.Body); err == nil {
			t.Errorf("%s: the body read without an error", name)
		}
	}
}

// sameAsNetHTTP checks that what the fast path takes, net/http reads the
// same way: the request, its body and where the next request starts. A body the fast path fails to read may be one net/http reads (it
// is stricter about trailers), never the reverse.
func sameAsNetHTTP(t testing.TB, data []byte) {
	fast, br, ok := fastRead(data)
	if !ok {
		if rest, _ := io.ReadAll(br); !bytes.Equal(rest, data) {
			t.Fatalf("declined after reading %d bytes", len(data)-len(rest))
		}
		return
	}
	br2 := bufio.NewReader(bytes.NewReader(data))
	slow, err := http.ReadRequest(br2)
	if err != nil {
		t.Fatalf("the fast path took a request net/http refuses (%v):\n%q", err, data)
	}
	type view struct {
		Method, Path, RawPath, RawQuery, URI, Host, Proto string
		Close                                             bool
		Length                                            int64
		TE                                                []string
		Header                                            [2][]string // what the API reads of the head
	}
	v := func(r *http.Request) view {
		return view{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RequestURI, r.Host, r.Proto, r.Close, r.ContentLength, r.TransferEncoding,
			[2][]string{r.Header.Values("Content-Type"), r.Header.Values("Lambda-Runtime-Function-Error-Type")}}
	}
	if a, b := v(fast), v(slow); !reflect.DeepEqual(a, b) {
		t.Fatalf("the fast path read %+v, net/http %+v, from\n%q", a, b, data)
	}
	b1, e1 := io.ReadAll(fast.Body)
	b2, e2 := io.ReadAll(slow.Body)
	if e1 != nil {
		return
	}
	if e2 != nil {
		t.Fatalf("the fast path read a body net/http fails (%v):\n%q", e2, data)
	}
	r1, _ := io.ReadAll(br)
	r2, _ := io.ReadAll(br2)
	if !bytes.Equal(b1, b2) || !bytes.Equal(r1, r2) {
		t.Fatalf("bodies differ: fast %q (then %q), net/http %q (then %q), from\n%q", b1, r1, b2, r2, data)
	}
}

func FuzzAPIRequest(f *testing.F) {
	for _, b := range clientRequests(f) {
		f.Add(b)
	}
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: x\r\nTrailer: X-A\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-A: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 003\r\nConnection: close\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) { sameAsNetHTTP(t, data) })
}

// A request the fast path declines reads as before, through net/http.
func TestAPIRequestFallsBack(t *testing.T) {
	in := "POST /p?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	req, err := readAPIRequest(bufio.NewReader(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(req.Body); req.URL.RawQuery != "x=1" || string(b) != "abc" {
		t.Fatalf("read %q %q", req.URL.RawQuery, b)
	}
	if _, err := readAPIRequest(bufio.NewReader(strings.NewReader("BAD\r\n\r\n"))); err == nil {
		t.Fatal("a malformed request read")
	}
}

// BenchmarkAPIRequest reads aws-lambda-go's answer (as Go's client sends
// it) and its body, with the fast path and with net/http's parser.
func BenchmarkAPIRequest(b *testing.B) {
	post := clientRequests(b)[1]
	r := bytes.NewReader(post)
	br := bufio.NewReaderSize(r, 4096)
	for _, c := range []struct {
		name string
		read func(*bufio.Reader) (*http.Request, error)
	}{{"fast", readAPIRequest}, {"net-http", http.ReadRequest}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(post)
				br.Reset(r)
				br.Peek(1)
				req, err := c.read(br)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadAll(req.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
