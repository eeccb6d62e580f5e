// Package lambdaclient invokes Lambda functions through a Lambda Invoke
// endpoint with aws-sdk-go-v2's Lambda client, requests signed with
// Signature Version 4: the Event Gateway's awslambda functions. The
// endpoint is another Lambda API (AWS's, or another nimbus) or, when none
// is set, nimbus's own, served in-process without a network hop.
package lambdaclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// Request is one invocation.
type Request struct {
	ARN, Region string
	// Keys sign the request; empty takes AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from nimbus's
	// environment, as an AWS SDK does.
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
	Code, Message string
}

func (e *Error) Error() string {
	return "the Lambda API refused the invocation: " + e.Code + ": " + e.Message
}

// Client invokes through one endpoint.
type Client struct {
	endpoint string
	http     aws.HTTPClient
}

// New is a client of the Lambda API at endpoint (http or https URL); an
// empty endpoint is local, the Lambda API handler of this nimbus,
// called in-process.
func New(endpoint string, local http.Handler) *Client {
	if endpoint == "" {
		return &Client{endpoint: "http://nimbus.internal", http: handlerClient{local}}
	}
	return &Client{endpoint: endpoint, http: http.DefaultClient}
}

// Invoke runs one invocation.
func (c *Client) Invoke(ctx context.Context, r Request) (Result, error) {
	creds := aws.Credentials{AccessKeyID: r.AccessKeyID, SecretAccessKey: r.SecretAccessKey, SessionToken: r.SessionToken}
	if creds.AccessKeyID == "" {
		creds = aws.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
	}
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return Result{}, errors.New("no credentials to sign the invocation with: register the function with provider.awsAccessKeyId and awsSecretAccessKey, or give nimbus AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	cl := lambda.New(lambda.Options{
		Region:       r.Region,
		BaseEndpoint: aws.String(c.endpoint),
		HTTPClient:   c.http,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		RetryMaxAttempts: 1, // the caller's queue retries
	})
	in := &lambda.InvokeInput{FunctionName: aws.String(r.ARN), Payload: r.Payload}
	if r.Event {
		in.InvocationType = types.InvocationTypeEvent
	}
	out, err := cl.Invoke(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return Result{}, &Error{Code: ae.ErrorCode(), Message: ae.ErrorMessage()}
		}
		return Result{}, fmt.Errorf("invoking %s at %s: %w", r.ARN, c.endpoint, err)
	}
	return Result{Status: int(out.StatusCode), FunctionError: aws.ToString(out.FunctionError), Payload: out.Payload}, nil
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
