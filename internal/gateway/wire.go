package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// excluded headers are written by writeRequest itself, or never sent.
var excluded = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Trailer": true}

var errShortBody = errors.New("request body is shorter than its Content-Length")

// writeRequest writes an HTTP/1.1 request with a known-length body. Unlike
// Request.Write, it does not flush the headers before a body it cannot see
// into, so headers and a small body leave in one write (and wake the function
// once). The body is read straight into the write buffer; bodies larger than
// the buffer go out in buffer-sized pieces as they are read.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	uri := req.URL.RequestURI()
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if req.ContentLength > 0 || req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH" {
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		if excluded[k] {
			continue
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue // the proxy's way of sending no User-Agent
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if remaining := req.ContentLength; remaining > 0 {
		for remaining > 0 {
			if bw.Available() == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
			}
			buf := bw.AvailableBuffer()[:min(int64(bw.Available()), remaining)]
			n, err := req.Body.Read(buf)
			bw.Write(buf[:n]) // buf is bw's own free space: this copies nothing
			remaining -= int64(n)
			if err == io.EOF {
				if remaining > 0 {
					return errShortBody
				}
				break
			}
			if err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
