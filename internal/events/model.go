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
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
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
	// Type is the older form's place for the function type.
	Type string `json:"type,omitempty"`
}

// Function is a registered function.
type Function struct {
	Space      string            `json:"space"`
	FunctionID string            `json:"functionId"`
	Type       string            `json:"type"`
	Provider   Provider          `json:"provider"`
	Metadata   map[string]string `json:"metadata,omitempty"`
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

// ValidateSpace: a space is a nimbus namespace.
func ValidateSpace(space string) error {
	if err := function.ValidateName("space", space); err != nil {
		return fmt.Errorf("%v (a space is a nimbus namespace)", err)
	}
	return nil
}

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
	return validID("name", t.Name)
}

// Normalize fills defaults (the older form's provider.type) and checks a
// function; check vets an outside URL (the outbound guard).
func (f *Function) Normalize(check func(string) error) error {
	if err := validID("functionId", f.FunctionID); err != nil {
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
	case TypeNimbus:
		if err := function.ValidateName("provider.function", f.Provider.Function); err != nil {
			return fmt.Errorf(`%v (the name of a nimbus function in this space's namespace)`, err)
		}
		f.Provider.URL = ""
	case "":
		return errors.New(`type is required: "http" (provider.url) or "nimbus" (provider.function)`)
	default:
		return fmt.Errorf(`function type %q is not supported: use "http" (provider.url) or "nimbus" (provider.function)`, f.Type)
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
	if err := validID("functionId", s.FunctionID); err != nil {
		return err
	}
	if s.Path == "" {
		s.Path = "/"
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

func subscriptionID(s Subscription) string {
	parts := []string{s.Type, s.EventType}
	if s.Type == Async {
		parts = append(parts, s.FunctionID)
	}
	parts = append(parts, s.Path, s.Method)
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
