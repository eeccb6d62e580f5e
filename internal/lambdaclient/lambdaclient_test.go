package lambdaclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"nimbus/internal/sigv4"
)

// verifier answers as a Lambda API does: 403 InvalidSignatureException
// unless the request is signed with the key's secret, else the payload.
type verifier struct{ secret string }

func (v verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, err := sigv4.Verify(r, body, "lambda", func(string) (string, bool) { return v.secret, true }, time.Now()); err != nil {
		w.Header().Set("X-Amzn-ErrorType", "InvalidSignatureException")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"message":"`+err.Error()+`"}`)
		return
	}
	if r.Header.Get("X-Amz-Invocation-Type") == "Event" {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Write(body)
}

// TestSignsEachWithItsOwnSecret: functions registered with the same key
// id and different secrets are signed each with its own (a signer shared
// between them would reuse the first one's derived key); the API's
// refusal comes back as an *Error with its code.
func TestSignsEachWithItsOwnSecret(t *testing.T) {
	c := New("", verifier{secret: "right"})
	req := Request{ARN: "arn:aws:lambda:us-east-1:000000000000:function:f", Region: "us-east-1", AccessKeyID: "AKIATEST", SecretAccessKey: "right", Payload: []byte(`{"a":1}`)}
	if res, err := c.Invoke(context.Background(), req); err != nil || string(res.Payload) != `{"a":1}` || res.Status != 200 {
		t.Fatalf("the right secret: %+v %v", res, err)
	}
	req.SecretAccessKey = "wrong"
	_, err := c.Invoke(context.Background(), req)
	var e *Error
	if !errors.As(err, &e) || e.Status != 403 || e.Code != "InvalidSignatureException" {
		t.Fatalf("a wrong secret after the right one: %v", err)
	}
	req.SecretAccessKey, req.Event = "right", true
	if res, err := c.Invoke(context.Background(), req); err != nil || res.Status != 202 {
		t.Fatalf("an Event: %+v %v", res, err)
	}
	// Without the registration's keys nothing is signed, not even with
	// credentials nimbus's environment holds.
	req.AccessKeyID, req.SecretAccessKey = "", ""
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "right")
	if _, err := c.Invoke(context.Background(), req); err == nil {
		t.Fatal("signed with the environment's credentials")
	}
}
