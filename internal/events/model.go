// Package events is nimbus's event gateway: the Serverless Event Gateway's
// configuration API (spaces, event types, functions, subscriptions, CORS),
// its events API on a listener of its own, and CloudEvents 1.0 ingress.
//
// Unlike the Event Gateway, which kept events in memory and delivered at
// most once, every async delivery here is one durable message in the async
// queue per subscriber, with its retries and dead letters; a sync
// subscription is an invocation whose {statusCode, headers, body} answer is
// the HTTP response. Functions receive events in CloudEvents binary mode.
//
// A space is a nimbus namespace: a function of type "nimbus" names a
// function in the namespace with the space's name.
package events

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"nimbus/internal/function"
)

// HTTPRequest is the built-in event type of a plain HTTP request.
const HTTPRequest = "http.request"

// Subscription types.
const (
	Sync  = "sync"
	Async = "async"
)

// Function types.
const (
	TypeHTTP   = "http"   // an outside endpoint: provider.url
	TypeNimbus = "nimbus" // a nimbus function: provider.function
	// TypeAWSLambda is a Lambda function by ARN (provider.arn, .region,
	// optionally keys), invoked through a Lambda Invoke endpoint: nimbus's
	// own by default, where an ARN of nimbus's account names a function
	// of the space's namespace.
	TypeAWSLambda = "awslambda"
)

// Errors the config API maps to statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInUse    = errors.New("in use")
)

// EventType is a registered event type.
type EventType struct {
	Space        string            `json:"space"`
	Name         string            `json:"name"`
	AuthorizerID string            `json:"authorizerId,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// Provider says where a function is.
type Provider struct {
	URL      string `json:"url,omitempty"`      // type http
	Function string `json:"function,omitempty"` // type nimbus
	// Type awslambda: the function's ARN and region, and the access key
	// to sign its invocations with, if not nimbus's own (the secret and
	// session token are never shown again).
	ARN                string `json:"arn,omitempty"`
	Region             string `json:"region,omitempty"`
	AWSAccessKeyID     string `json:"awsAccessKeyId,omitempty"`
	AWSSecretAccessKey string `json:"awsSecretAccessKey,omitempty"`
	AWSSessionToken    string `json:"awsSessionToken,omitempty"`
	// Type is the older form's place for the function type.
	Type string `json:"type,omitempty"`
}

// UnmarshalJSON also takes the older names of the keys, accessKeyId and
// secretAccessKey, as the Event Gateway's docs gave them.
func (p *Provider) UnmarshalJSON(b []byte) error {
	type plain Provider
	var v struct {
		plain
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Provider(v.plain)
	if p.AWSAccessKeyID == "" {
		p.AWSAccessKeyID = v.AccessKeyID
	}
	if p.AWSSecretAccessKey == "" {
		p.AWSSecretAccessKey = v.SecretAccessKey
	}
	return nil
}

// Redacted is f as the config API shows it: without its secret key and
// session token.
func (f Function) Redacted() Function {
	if f.Provider.AWSSecretAccessKey != "" {
		f.Provider.AWSSecretAccessKey = "*****"
	}
	if f.Provider.AWSSessionToken != "" {
		f.Provider.AWSSessionToken = "*****"
	}
	return f
}

// Function is a registered function.
type Function struct {
	Space      string            `json:"space"`
	FunctionID string            `json:"functionId"`
	Type       string            `json:"type"`
	Provider   Provider          `json:"provider"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	// EventFormat is how the function receives events (a subscription may
	// choose otherwise): FormatEG01 by default for type http, what the
	// Event Gateway sent; FormatCEBinary for type nimbus.
	EventFormat string `json:"eventFormat,omitempty"`
}

// Event formats a function can receive events in.
const (
	// FormatCEBinary: CloudEvents 1.0 binary mode, ce-* headers and the
	// data as the body.
	FormatCEBinary = "ce-1.0-binary"
	// FormatCEStructured: CloudEvents 1.0 structured mode, the event as
	// application/cloudevents+json.
	FormatCEStructured = "ce-1.0-structured"
	// FormatEG01: what the Event Gateway sends, a CloudEvents 0.1 JSON
	// envelope as application/cloudevents+json.
	FormatEG01 = "eg-0.1"
)

func validFormat(f string) error {
	switch f {
	case "", FormatCEBinary, FormatCEStructured, FormatEG01:
		return nil
	}
	return fmt.Errorf("eventFormat %q is not one of %q, %q, %q", f, FormatCEBinary, FormatCEStructured, FormatEG01)
}

// format is how sub's events reach fn.
func format(sub Subscription, fn Function) string {
	switch {
	case sub.EventFormat != "":
		return sub.EventFormat
	case fn.EventFormat != "":
		return fn.EventFormat
	case fn.Type == TypeHTTP, fn.Type == TypeAWSLambda:
		// A Lambda handler's event is JSON: the Event Gateway's envelope.
		return FormatEG01
	}
	return FormatCEBinary
}

// CORSConfig is the older, per-subscription CORS form.
type CORSConfig struct {
	Origins          []string `json:"origins,omitempty"`
	Methods          []string `json:"methods,omitempty"`
	Headers          []string `json:"headers,omitempty"`
	AllowCredentials bool     `json:"allowCredentials,omitempty"`
}

// Subscription routes events of a type on a path and method to a function.
type Subscription struct {
	Space          string            `json:"space"`
	SubscriptionID string            `json:"subscriptionId"`
	Type           string            `json:"type"`
	EventType      string            `json:"eventType"`
	FunctionID     string            `json:"functionId"`
	Path           string            `json:"path"`
	Method         string            `json:"method"`
	CORS           *CORSConfig       `json:"cors,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	// Event is the older form: "http" is a sync subscription to
	// http.request; any other value an async one to that event type.
	Event string `json:"event,omitempty"`
	// EventFormat, if set, overrides the function's (see Function).
	EventFormat string `json:"eventFormat,omitempty"`
}

// CORS is a CORS configuration for a method and path.
type CORS struct {
	Space            string            `json:"space"`
	CORSID           string            `json:"corsId"`
	Method           string            `json:"method"`
	Path             string            `json:"path"`
	AllowedOrigins   []string          `json:"allowedOrigins"`
	AllowedMethods   []string          `json:"allowedMethods"`
	AllowedHeaders   []string          `json:"allowedHeaders"`
	AllowCredentials bool              `json:"allowCredentials"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

// nameRE is the Event Gateway's rule for spaces, function ids and the
// event types of subscriptions.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidateSpace checks a space as the Event Gateway does: at least 3 of
// letters, digits, '.', '_' and '-' (at most 200).
func ValidateSpace(space string) error {
	if len(space) < 3 || len(space) > 200 || !nameRE.MatchString(space) {
		return fmt.Errorf("space %q is not valid: use 3 to 200 letters, digits, '.', '_' or '-'", space)
	}
	return nil
}

// Namespace is the nimbus namespace of a space, whose nimbus functions a
// function of type "nimbus" names: the space itself when it is a DNS label
// (default, team-a), else a label made of it and a hash of it (My_Space →
// my-space-3e9d2b1c), stable and distinct per space. The Event Gateway's
// "default" space is nimbus's default namespace.
func Namespace(space string) string {
	if function.ValidateName("space", space) == nil && space != function.OpenFaaSNamespace {
		return space
	}
	var b strings.Builder
	for _, r := range strings.ToLower(space) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if base == "" || base[0] < 'a' || base[0] > 'z' {
		base = "s-" + base
	}
	sum := sha256.Sum256([]byte(space))
	return strings.TrimSuffix(base[:min(len(base), 50)], "-") + "-" + hex.EncodeToString(sum[:4])
}

// systemPrefix marks the Event Gateway's own event types.
const systemPrefix = "eventgateway."

// validID: IDs and event type names are kept as given; bound them.
func validID(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required", field)
	}
	if len(v) > 256 || strings.ContainsAny(v, "\x00\r\n") {
		return fmt.Errorf("%s must be at most 256 characters, without control characters", field)
	}
	return nil
}

// Normalize fills defaults and checks an event type.
func (t *EventType) Normalize() error {
	if err := validID("name", t.Name); err != nil {
		return err
	}
	if strings.HasPrefix(t.Name, systemPrefix) {
		return fmt.Errorf("event types starting with %q are the Event Gateway's own: choose another name", systemPrefix)
	}
	return nil
}

// Normalize fills defaults (the older form's provider.type) and checks a
// function; check vets an outside URL (the outbound guard).
func (f *Function) Normalize(check func(string) error) error {
	if err := validID("functionId", f.FunctionID); err != nil {
		return err
	}
	if !nameRE.MatchString(f.FunctionID) {
		return fmt.Errorf("functionId %q is not valid: use letters, digits, '.', '_' or '-'", f.FunctionID)
	}
	if err := validFormat(f.EventFormat); err != nil {
		return err
	}
	if f.Type == "" {
		f.Type = f.Provider.Type
	}
	f.Provider.Type = ""
	switch f.Type {
	case TypeHTTP:
		u, err := url.Parse(f.Provider.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New(`provider.url must be an http or https URL for a function of type "http"`)
		}
		if check != nil {
			if err := check(f.Provider.URL); err != nil {
				return fmt.Errorf("provider.url: %v", err)
			}
		}
		f.Provider.Function = ""
		f.Provider.ARN, f.Provider.Region, f.Provider.AWSAccessKeyID, f.Provider.AWSSecretAccessKey, f.Provider.AWSSessionToken = "", "", "", "", ""
	case TypeAWSLambda:
		p := &f.Provider
		a, err := ParseLambdaARN(p.ARN)
		if err != nil {
			return fmt.Errorf("provider.arn: %v", err)
		}
		if p.Region == "" {
			p.Region = a.Region
		}
		if p.Region != a.Region {
			return fmt.Errorf("provider.region %q is not the ARN's region %q", p.Region, a.Region)
		}
		if (p.AWSAccessKeyID == "") != (p.AWSSecretAccessKey == "") {
			return errors.New("provider.awsAccessKeyId and provider.awsSecretAccessKey go together: give both, or neither to use nimbus's own Lambda API or credentials")
		}
		if p.AWSSessionToken != "" && p.AWSAccessKeyID == "" {
			return errors.New("provider.awsSessionToken needs provider.awsAccessKeyId and provider.awsSecretAccessKey")
		}
		for name, v := range map[string]string{"awsAccessKeyId": p.AWSAccessKeyID, "awsSecretAccessKey": p.AWSSecretAccessKey, "awsSessionToken": p.AWSSessionToken} {
			if strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) || len(v) > 2048 {
				return fmt.Errorf("provider.%s holds characters a key cannot (or is over 2048)", name)
			}
		}
		p.URL, p.Function = "", ""
	case TypeNimbus:
		if err := function.ValidateName("provider.function", f.Provider.Function); err != nil {
			return fmt.Errorf(`%v (the name of a nimbus function in this space's namespace)`, err)
		}
		f.Provider.URL = ""
		f.Provider.ARN, f.Provider.Region, f.Provider.AWSAccessKeyID, f.Provider.AWSSecretAccessKey, f.Provider.AWSSessionToken = "", "", "", "", ""
	case "":
		return errors.New(`type is required: "http" (provider.url), "nimbus" (provider.function) or "awslambda" (provider.arn)`)
	default:
		return fmt.Errorf(`function type %q is not supported: use "http" (provider.url), "nimbus" (provider.function) or "awslambda" (provider.arn)`, f.Type)
	}
	return nil
}

// Normalize fills defaults (path /, method POST; the older "event" form),
// checks a subscription and sets its ID.
func (s *Subscription) Normalize() error {
	if s.Event != "" {
		if s.EventType != "" || s.Type != "" {
			return errors.New(`give either "event" (the older form) or "type" and "eventType", not both`)
		}
		if s.Event == "http" {
			s.Type, s.EventType = Sync, HTTPRequest
		} else {
			s.Type, s.EventType = Async, s.Event
		}
		s.Event = ""
	}
	if s.Type != Sync && s.Type != Async {
		return errors.New(`type must be "sync" or "async"`)
	}
	if err := validID("eventType", s.EventType); err != nil {
		return err
	}
	if !nameRE.MatchString(s.EventType) {
		return fmt.Errorf("eventType %q is not valid: use letters, digits, '.', '_' or '-'", s.EventType)
	}
	if strings.HasPrefix(s.EventType, systemPrefix) {
		return fmt.Errorf("event types starting with %q are the Event Gateway's own: nimbus emits none", systemPrefix)
	}
	if err := validID("functionId", s.FunctionID); err != nil {
		return err
	}
	if err := validFormat(s.EventFormat); err != nil {
		return err
	}
	if !strings.HasPrefix(s.Path, "/") {
		s.Path = "/" + s.Path // as the Event Gateway does: "" is "/", "users" is "/users"
	}
	if err := validatePath(s.Path); err != nil {
		return err
	}
	if s.Method == "" {
		s.Method = "POST"
	}
	s.Method = strings.ToUpper(s.Method)
	if !validMethod(s.Method) {
		return fmt.Errorf("method %q is not an HTTP method", s.Method)
	}
	s.SubscriptionID = subscriptionID(*s)
	return nil
}

// subscriptionID is the Event Gateway's: base64url (no padding) of
// "type,eventType[,functionId],PathEscape(path),METHOD" — the function only
// for async ones, so a second sync subscription on a path is the same ID.
func subscriptionID(s Subscription) string {
	parts := []string{s.Type, s.EventType}
	if s.Type == Async {
		parts = append(parts, s.FunctionID)
	}
	parts = append(parts, url.PathEscape(s.Path), s.Method)
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, ",")))
}

// Normalize fills defaults and checks a CORS configuration, and sets its ID.
func (c *CORS) Normalize() error {
	if c.Path == "" {
		c.Path = "/"
	}
	if err := validatePath(c.Path); err != nil {
		return err
	}
	if c.Method == "" {
		c.Method = "GET"
	}
	c.Method = strings.ToUpper(c.Method)
	if !validMethod(c.Method) {
		return fmt.Errorf("method %q is not an HTTP method", c.Method)
	}
	if len(c.AllowedOrigins) == 0 {
		c.AllowedOrigins = []string{"*"}
	}
	if len(c.AllowedMethods) == 0 {
		c.AllowedMethods = []string{"HEAD", "GET", "POST"}
	}
	if len(c.AllowedHeaders) == 0 {
		c.AllowedHeaders = []string{"Origin", "Accept", "Content-Type"}
	}
	c.CORSID = c.Method + url.PathEscape(c.Path)
	return nil
}

func validMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}

// LambdaARN is a Lambda function's ARN, taken apart:
// arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER].
type LambdaARN struct {
	Partition, Region, Account, Name, Qualifier string
}

var (
	lambdaNameRE      = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	lambdaQualifierRE = regexp.MustCompile(`^(\$LATEST|[a-zA-Z0-9_-]{1,128})$`)
	regionRE          = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
)

// ParseLambdaARN takes a function ARN apart, or says what is wrong with it.
func ParseLambdaARN(s string) (LambdaARN, error) {
	const form = "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]"
	p := strings.Split(s, ":")
	if s == "" {
		return LambdaARN{}, fmt.Errorf("is required: %s", form)
	}
	if len(p) < 7 || len(p) > 8 || p[0] != "arn" || p[2] != "lambda" || p[5] != "function" {
		return LambdaARN{}, fmt.Errorf("%q is not a Lambda function ARN: use %s", s, form)
	}
	a := LambdaARN{Partition: p[1], Region: p[3], Account: p[4], Name: p[6]}
	if len(p) == 8 {
		a.Qualifier = p[7]
		if !lambdaQualifierRE.MatchString(a.Qualifier) {
			return LambdaARN{}, fmt.Errorf("%q: the qualifier %q is not a version or alias", s, a.Qualifier)
		}
	}
	switch {
	case a.Partition != "aws" && a.Partition != "aws-cn" && a.Partition != "aws-us-gov":
		return LambdaARN{}, fmt.Errorf("%q: partition %q is not aws, aws-cn or aws-us-gov", s, a.Partition)
	case !regionRE.MatchString(a.Region):
		return LambdaARN{}, fmt.Errorf("%q: %q is not a region (such as us-east-1)", s, a.Region)
	case len(a.Account) != 12 || strings.Trim(a.Account, "0123456789") != "":
		return LambdaARN{}, fmt.Errorf("%q: the account %q is not 12 digits", s, a.Account)
	case !lambdaNameRE.MatchString(a.Name):
		return LambdaARN{}, fmt.Errorf("%q: the function name %q is not 1-64 letters, digits, - or _", s, a.Name)
	}
	return a, nil
}
