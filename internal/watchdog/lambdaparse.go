package watchdog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
)

// The Runtime API's requests are a handler's runtime client's: a request
// line, a handful of headers, a small body. readAPIRequest parses those
// itself, in a fraction of http.ReadRequest's time (two of them are on
// every invocation's path); anything it does not recognise goes to
// http.ReadRequest, which reads it from where it starts, as before. The
// fast path only accepts what net/http reads the same way (a differential
// fuzz test holds it to that), and keeps of the head what the API reads:
// method, path, framing, Content-Type, Lambda-Runtime-Function-Error-Type.

// maxTrailerLines bounds a chunked body's trailer section.
const maxTrailerLines = 32

// readAPIRequest reads one request from br.
func readAPIRequest(br *bufio.Reader) (*http.Request, error) {
	if req, ok := parseAPIRequest(br); ok {
		return req, nil
	}
	return http.ReadRequest(br)
}

// parseAPIRequest parses a request whose head is already buffered whole
// and is of the plain kind; false (and nothing read) otherwise.
func parseAPIRequest(br *bufio.Reader) (*http.Request, bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := buf[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || !plainTarget(target) {
		return nil, false
	}
	req := &http.Request{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, 2)}
	switch string(method) {
	case http.MethodGet:
		req.Method = http.MethodGet
	case http.MethodPost:
		req.Method = http.MethodPost
	default:
		return nil, false
	}
	req.RequestURI = string(target)
	req.URL = &url.URL{Path: req.RequestURI}
	chunked, length, host := false, int64(-1), false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok || !plainToken(name) || !plainValue(value) {
			return nil, false
		}
		v := bytes.Trim(value, " \t")
		switch {
		case is(name, "Content-Length"):
			n, err := strconv.ParseInt(string(v), 10, 64)
			if length >= 0 || err != nil || v[0] < '0' || v[0] > '9' {
				return nil, false
			}
			length = n
		case is(name, "Transfer-Encoding"):
			if string(v) != "chunked" || chunked {
				return nil, false
			}
			chunked = true
		case is(name, "Connection"):
			switch string(v) {
			case "close":
				req.Close = true
			case "keep-alive", "Keep-Alive":
			default:
				return nil, false
			}
		case is(name, "Host"):
			if host || len(v) == 0 {
				return nil, false
			}
			host, req.Host = true, string(v)
		case is(name, "Trailer"):
			// Declared trailers: only names net/http also takes.
			for k := range bytes.SplitSeq(v, []byte(",")) {
				k = bytes.TrimSpace(k)
				if !plainToken(k) || is(k, "Transfer-Encoding") || is(k, "Trailer") || is(k, "Content-Length") {
					return nil, false
				}
			}
		case is(name, "Content-Type"), is(name, "Lambda-Runtime-Function-Error-Type"):
			// What the API reads of a request's head.
			key := textproto.CanonicalMIMEHeaderKey(string(name))
			req.Header[key] = append(req.Header[key], string(v))
		case is(name, "Expect"), is(name, "Pragma"):
			// Expect takes net/http's path (100-continue); Pragma is
			// one net/http rewrites.
			return nil, false
		}
	}
	if chunked && length >= 0 {
		return nil, false // both: net/http decides
	}
	br.Discard(end + 4)
	switch {
	case chunked:
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		req.Body = &chunkedBody{r: httputil.NewChunkedReader(br), br: br}
	case length > 0:
		req.ContentLength = length
		req.Body = &lengthBody{r: br, n: length}
	default:
		req.Body = http.NoBody
	}
	return req, true
}

// is reports whether a header name is name, in any case.
func is(b []byte, name string) bool {
	return len(b) == len(name) && bytes.EqualFold(b, []byte(name))
}

// lengthBody is a body of a Content-Length: one that ends short of it is
// an error, as net/http's.
type lengthBody struct {
	r io.Reader
	n int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err == io.EOF && b.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil // the next Read says EOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

// plainTarget: an origin-form path of unreserved characters and slashes,
// which needs no decoding.
func plainTarget(b []byte) bool {
	if len(b) == 0 || b[0] != '/' {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/' || c == '-' || c == '.' || c == '_' || c == '~':
		default:
			return false
		}
	}
	return !bytes.Contains(b, []byte("/./")) && !bytes.Contains(b, []byte("/../")) && !bytes.HasSuffix(b, []byte("/.")) && !bytes.HasSuffix(b, []byte("/.."))
}

// plainToken: a header name of letters, digits and dashes.
func plainToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// plainValue: visible ASCII, spaces and tabs.
func plainValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// chunkedBody is a chunked body, whose trailer section is read when the
// last chunk is, so that the connection's next request starts where it
// should.
type chunkedBody struct {
	r   io.Reader
	br  *bufio.Reader
	err error
}

var errTrailer = errors.New("malformed trailer section")

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		err = b.readTrailer()
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// readTrailer reads the trailer section (the API reads no trailer); io.EOF
// when it is whole.
func (b *chunkedBody) readTrailer() error {
	for range maxTrailerLines {
		l, err := b.br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		l, ok := bytes.CutSuffix(l, []byte("\r\n"))
		if !ok {
			return errTrailer
		}
		if len(l) == 0 {
			return io.EOF
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok || !plainToken(name) || !plainValue(value) {
			return errTrailer
		}
	}
	return errTrailer
}

func (b *chunkedBody) Close() error { return nil }
