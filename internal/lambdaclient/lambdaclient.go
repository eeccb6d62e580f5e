// Package lambdaclient invokes Lambda functions through a Lambda Invoke
// endpoint (POST /2015-03-31/functions/ARN/invocations), requests signed
// with Signature Version 4 by aws-sdk-go-v2's signer: the Event Gateway's
// awslambda functions. The endpoint is another Lambda API (AWS's, or
// another nimbus) or, when none is set, nimbus's own, served in-process
// without a network hop. (Not the SDK's whole Lambda client: its
// package-level state would grow every nimbus process by megabytes,
// `nimbus watchdog` in a small container included.)
package lambdaclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Request is one invocation.
type Request struct {
	ARN, Region string
	// Keys sign the request: the registration's own. nimbus never signs
	// with credentials of its own (its environment's), which would lend
	// every space the operator's rights.
	AccessKeyID, SecretAccessKey, SessionToken string
	// Event: an asynchronous invocation (202), else RequestResponse.
	Event   bool
	Payload []byte
}

// Result is the function's answer.
type Result struct {
	Status int
	// FunctionError is X-Amz-Function-Error: the handler failed, and
	// Payload is Lambda's error JSON.
	FunctionError string
	Payload       []byte
}

// Error is the Lambda API refusing the request (not the function failing):
// its error code and message.
type Error struct {
	Status        int
	Code, Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("the Lambda API refused the invocation (%d): %s: %s", e.Status, e.Code, e.Message)
}

// MaxAnswer bounds the answer read: Lambda's synchronous response limit.
const MaxAnswer = 6 << 20

// Client invokes through one endpoint.
type Client struct {
	endpoint string
	do       func(*http.Request) (*http.Response, error)
}

// New is a client of the Lambda API at endpoint (http or https URL); an
// empty endpoint is local, the Lambda API handler of this nimbus,
// called in-process.
func New(endpoint string, local http.Handler) *Client {
	c := &Client{endpoint: strings.TrimSuffix(endpoint, "/")}
	if endpoint == "" {
		c.endpoint, c.do = "http://nimbus.internal", handlerClient{local}.Do
	} else {
		hc := &http.Client{Timeout: 15 * time.Minute} // Lambda's longest invocation
		c.do = hc.Do
	}
	return c
}

// Invoke runs one invocation.
func (c *Client) Invoke(ctx context.Context, r Request) (Result, error) {
	creds := aws.Credentials{AccessKeyID: r.AccessKeyID, SecretAccessKey: r.SecretAccessKey, SessionToken: r.SessionToken}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return Result{}, errors.New("no keys to sign the invocation with: register the function with provider.awsAccessKeyId and provider.awsSecretAccessKey")
	}
	u := c.endpoint + "/2015-03-31/functions/" + url.PathEscape(r.ARN) + "/invocations"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(r.Payload))
	if err != nil {
		return Result{}, fmt.Errorf("invoking %s at %s: %w", r.ARN, c.endpoint, err)
	}
	typ := "RequestResponse"
	if r.Event {
		typ = "Event"
	}
	req.Header.Set("X-Amz-Invocation-Type", typ)
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(r.Payload)
	// A signer of its own for each request: a v4.Signer keeps the keys it
	// derives by access key id, not by secret, so one shared by functions
	// registered with the same id and different secrets would sign with
	// whichever secret came first (a wrong secret would pass).
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "lambda", r.Region, time.Now()); err != nil {
		return Result{}, fmt.Errorf("signing the invocation of %s: %w", r.ARN, err)
	}
	resp, err := c.do(req)
	if err != nil {
		return Result{}, fmt.Errorf("invoking %s at %s: %w", r.ARN, c.endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return Result{}, fmt.Errorf("reading the answer of %s: %w", r.ARN, err)
	}
	if len(body) > MaxAnswer {
		return Result{}, fmt.Errorf("the answer of %s is over %d bytes", r.ARN, MaxAnswer)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode, Code: resp.Header.Get("X-Amzn-ErrorType")}
		var b struct{ Message string }
		json.Unmarshal(body, &b)
		if e.Message = b.Message; e.Message == "" {
			e.Message = strings.TrimSpace(string(body))
		}
		if i := strings.IndexByte(e.Code, ':'); i >= 0 {
			e.Code = e.Code[:i] // AWS's X-Amzn-ErrorType may carry ":http://..."
		}
		if e.Code == "" {
			e.Code = "HTTP" + strconv.Itoa(resp.StatusCode)
		}
		return Result{}, e
	}
	return Result{Status: resp.StatusCode, FunctionError: resp.Header.Get("X-Amz-Function-Error"), Payload: body}, nil
}

// handlerClient serves requests with a handler in-process.
type handlerClient struct{ h http.Handler }

func (c handlerClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		// The handler reads the body as a server would: whole, once.
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	if req.Host == "" {
		req.Host = req.URL.Host
	}
	if req.RequestURI == "" {
		req.RequestURI = req.URL.RequestURI()
	}
	rec := &recorder{header: http.Header{}}
	c.h.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return &http.Response{StatusCode: rec.code, Status: fmt.Sprintf("%d %s", rec.code, http.StatusText(rec.code)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header, Body: io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()), Request: req}, nil
}

// recorder keeps a handler's answer.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}
