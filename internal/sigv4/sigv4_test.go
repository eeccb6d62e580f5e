package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	keyID  = "AKIANIMBUSTEST000001"
	secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func lookup(id string) (string, bool) {
	if id == keyID {
		return secret, true
	}
	return "", false
}

// signed makes a request signed by the AWS SDK's own signer (the real
// client's code), as it would reach nimbus.
func signed(t *testing.T, method, url string, body []byte, at time.Time, mod func(*http.Request)) *http.Request {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
	if mod != nil {
		mod(req)
	}
	sum := sha256.Sum256(body)
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret},
		req, hex.EncodeToString(sum[:]), "lambda", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestVerifyAgainstTheSDKSigner sends requests signed by aws-sdk-go-v2
// through a real HTTP server and verifies them there: paths with ARNs
// (colons escaped twice), queries, bodies; then every way a signature
// must fail.
func TestVerifyAgainstTheSDKSigner(t *testing.T) {
	now := time.Now().UTC()
	type seen struct {
		c   Credential
		err error
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c, err := Verify(r, body, "lambda", lookup, now)
		got <- seen{c, err}
	}))
	defer srv.Close()
	send := func(req *http.Request, tamper func(*http.Request)) seen {
		t.Helper()
		if tamper != nil {
			tamper(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return <-got
	}
	body := []byte(`{"name":"nimbus"}`)
	for _, path := range []string{
		"/2015-03-31/functions/hello/invocations",
		"/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahello/invocations?Qualifier=live",
		"/2015-03-31/functions/?MaxItems=50&Marker=a%20b&FunctionVersion=ALL",
		"/2019-09-25/functions/hello/event-invoke-config?Qualifier=%24LATEST",
	} {
		s := send(signed(t, "POST", srv.URL+path, body, now, nil), nil)
		if s.err != nil || s.c.AccessKey != keyID || s.c.Region != "us-east-1" || s.c.Service != "lambda" {
			t.Errorf("%s: %+v %v", path, s.c, s.err)
		}
	}
	if s := send(signed(t, "GET", srv.URL+"/2015-03-31/functions/", nil, now, nil), nil); s.err != nil {
		t.Errorf("GET without a body: %v", s.err)
	}
	// A header signed with runs of spaces.
	if s := send(signed(t, "POST", srv.URL+"/x", body, now, func(r *http.Request) { r.Header.Set("X-Amz-Log-Type", "  Tail   now ") }), nil); s.err != nil {
		t.Errorf("folded spaces: %v", s.err)
	}

	url := srv.URL + "/2015-03-31/functions/hello/invocations"
	for _, c := range []struct {
		name   string
		req    *http.Request
		tamper func(*http.Request)
		want   error
	}{
		{"no header", signed(t, "POST", url, body, now, nil), func(r *http.Request) { r.Header.Del("Authorization") }, ErrMissing},
		{"another body", signed(t, "POST", url, body, now, nil), func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(`{"name":"mallory"}`)), 18
		}, ErrSignature},
		{"another path", signed(t, "POST", url, body, now, nil), func(r *http.Request) { r.URL.Path = "/2015-03-31/functions/other/invocations" }, ErrSignature},
		{"another signed header", signed(t, "POST", url, body, now, nil), func(r *http.Request) { r.Header.Set("X-Amz-Invocation-Type", "Event") }, ErrSignature},
		{"a query added", signed(t, "POST", url, body, now, nil), func(r *http.Request) { r.URL.RawQuery = "Qualifier=1" }, ErrSignature},
		{"unknown key", signed(t, "POST", url, body, now, nil), func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), keyID, "AKIAUNKNOWN000000000", 1))
		}, ErrUnknown},
		{"six minutes old", signed(t, "POST", url, body, now.Add(-6*time.Minute), nil), nil, ErrExpired},
		{"six minutes ahead", signed(t, "POST", url, body, now.Add(6*time.Minute), nil), nil, ErrExpired},
		{"another service", signed(t, "POST", url, body, now, nil), func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/lambda/", "/s3/", 1))
		}, ErrMalformed},
		{"another algorithm", signed(t, "POST", url, body, now, nil), func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), Algorithm, "AWS4-HMAC-SHA1", 1))
		}, ErrMalformed},
		{"garbage", signed(t, "POST", url, body, now, nil), func(r *http.Request) { r.Header.Set("Authorization", Algorithm+" Credential=x") }, ErrMalformed},
		{"a bad date", signed(t, "POST", url, body, now, nil), func(r *http.Request) { r.Header.Set("X-Amz-Date", "yesterday") }, ErrMalformed},
	} {
		if s := send(c.req, c.tamper); !errors.Is(s.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, s.err, c.want)
		}
	}
}
