// Package sigv4 verifies AWS Signature Version 4 on requests nimbus
// receives (the header form: Authorization: AWS4-HMAC-SHA256 …), so that
// AWS SDKs and the aws CLI can call nimbus's AWS-shaped APIs with access
// keys nimbus manages. It rebuilds the canonical request as the signer
// does (each path segment escaped again, the query sorted, the signed
// headers with their spaces folded), derives the signing key from the
// secret and compares in constant time. Time is passed in.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// MaxSkew is how far a request's X-Amz-Date may be from now, as AWS.
const MaxSkew = 5 * time.Minute

// Errors, each wrapped with a message that says what to fix.
var (
	ErrMissing   = errors.New("missing authentication")
	ErrMalformed = errors.New("malformed authorization")
	ErrUnknown   = errors.New("unknown access key")
	ErrExpired   = errors.New("signature expired")
	ErrSignature = errors.New("signature does not match")
)

// Credential is who signed a request, and for what.
type Credential struct {
	AccessKey, Date, Region, Service string
}

// Verify checks r's signature for service; body is r's whole payload.
// secret returns an access key's secret, false for an unknown key.
func Verify(r *http.Request, body []byte, service string, secret func(accessKey string) (string, bool), now time.Time) (Credential, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Credential{}, fmt.Errorf("%w: the request has no Authorization header; sign it with AWS Signature Version 4", ErrMissing)
	}
	rest, ok := strings.CutPrefix(auth, Algorithm+" ")
	if !ok {
		return Credential{}, fmt.Errorf("%w: only %s is accepted", ErrMalformed, Algorithm)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Credential{}, fmt.Errorf("%w: %q is not KEY=VALUE", ErrMalformed, part)
		}
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[0] == "" {
		return Credential{}, fmt.Errorf("%w: Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request", ErrMalformed)
	}
	c := Credential{AccessKey: scope[0], Date: scope[1], Region: scope[2], Service: scope[3]}
	if c.Service != service {
		return c, fmt.Errorf("%w: the credential is scoped to service %q, not %q", ErrMalformed, c.Service, service)
	}
	signedHeaders := fields["SignedHeaders"]
	want, err := hex.DecodeString(fields["Signature"])
	if signedHeaders == "" || err != nil || len(want) != sha256.Size {
		return c, fmt.Errorf("%w: SignedHeaders and a hex Signature are required", ErrMalformed)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return c, fmt.Errorf("%w: X-Amz-Date %q is not of the form 20060102T150405Z", ErrMalformed, amzDate)
	}
	if d := now.Sub(at); d > MaxSkew || d < -MaxSkew {
		return c, fmt.Errorf("%w: signed at %s, %s from this server's time (at most %s)", ErrExpired, at.Format(time.RFC3339), d.Round(time.Second), MaxSkew)
	}
	if at.Format("20060102") != c.Date {
		return c, fmt.Errorf("%w: the credential's date %s is not X-Amz-Date's", ErrMalformed, c.Date)
	}
	names := strings.Split(signedHeaders, ";")
	if !sort.StringsAreSorted(names) || !slices.Contains(names, "host") || !slices.Contains(names, "x-amz-date") {
		return c, fmt.Errorf("%w: SignedHeaders must be sorted and include host and x-amz-date", ErrMalformed)
	}
	key, ok := secret(c.AccessKey)
	if !ok {
		return c, fmt.Errorf("%w: %s", ErrUnknown, c.AccessKey)
	}

	payload := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(payload[:])
	if given := r.Header.Get("X-Amz-Content-Sha256"); given != "" && given != payloadHash {
		return c, fmt.Errorf("%w: X-Amz-Content-Sha256 is not the body's", ErrSignature)
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	canon.WriteString(escapePath(escapedPath(r.URL)) + "\n")
	canon.WriteString(canonicalQuery(r.URL.RawQuery) + "\n")
	for _, name := range names {
		canon.WriteString(name + ":" + headerValue(r, name) + "\n")
	}
	canon.WriteString("\n" + signedHeaders + "\n" + payloadHash)
	hashed := sha256.Sum256([]byte(canon.String()))
	toSign := Algorithm + "\n" + amzDate + "\n" + strings.Join(scope[1:], "/") + "\n" + hex.EncodeToString(hashed[:])

	k := mac([]byte("AWS4"+key), c.Date)
	k = mac(k, c.Region)
	k = mac(k, c.Service)
	k = mac(k, "aws4_request")
	if !hmac.Equal(mac(k, toSign), want) {
		return c, fmt.Errorf("%w: check the secret key and that nothing changed the request after signing", ErrSignature)
	}
	return c, nil
}

func mac(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// headerValue is a signed header's canonical value: its values joined by
// commas, each trimmed with inner runs of spaces folded to one.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return foldSpaces(r.Host)
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) == 0 {
			return strconv.FormatInt(r.ContentLength, 10)
		}
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = foldSpaces(v)
	}
	return strings.Join(out, ",")
}

func foldSpaces(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
}

func escapedPath(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// escapePath percent-encodes every byte but the unreserved ones and '/',
// with upper-case hex: applied to the path as sent, as the signer does.
func escapePath(p string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// canonicalQuery sorts the query by name, then value, each encoded as
// RFC 3986 asks (a space is %20).
func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	var pairs [][2]string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, [2]string{encode(k), encode(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0] + "=" + p[1]
	}
	return strings.Join(out, "&")
}

func encode(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
