package events

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Event is an event as nimbus keeps it between ingress and delivery,
// whichever CloudEvents version it came in (1.0 through sdk-go, 0.1 as the
// Event Gateway defined it, or made by nimbus) and whichever it goes out in
// (see the Format constants).
type Event struct {
	ID, Source, Type string
	TypeVersion      string // CloudEvents 0.1's eventTypeVersion
	SchemaURL        string // 0.1's schemaURL, 1.0's dataschema
	Subject          string
	Time             time.Time
	ContentType      string
	Extensions       map[string]any
	// Data is the payload's bytes; JSON, when set, is the payload as a JSON
	// value (a structured event's data), sent as it is where JSON is.
	Data []byte
	JSON json.RawMessage
}

// eventFromCE reads a CloudEvents 1.0 event of sdk-go.
func eventFromCE(ev event.Event) Event {
	e := Event{ID: ev.ID(), Source: ev.Source(), Type: ev.Type(), SchemaURL: ev.DataSchema(), Subject: ev.Subject(),
		Time: ev.Time(), ContentType: ev.DataContentType(), Data: ev.Data()}
	if exts := ev.Extensions(); len(exts) > 0 {
		e.Extensions = map[string]any{}
		for k, v := range exts {
			e.Extensions[k] = v
		}
	}
	if ct, _, _ := mime.ParseMediaType(e.ContentType); (ct == "application/json" || strings.HasSuffix(ct, "+json")) && json.Valid(e.Data) {
		e.JSON = json.RawMessage(e.Data)
	}
	return e
}

// ce is the event as sdk-go's CloudEvents 1.0: extension names that 1.0
// does not allow are made lower-case alphanumeric, values that are not
// strings become JSON.
func (e Event) ce() event.Event {
	ev := event.New()
	ev.SetID(e.ID)
	ev.SetSource(e.Source)
	ev.SetType(e.Type)
	if !e.Time.IsZero() {
		ev.SetTime(e.Time)
	}
	if e.Subject != "" {
		ev.SetSubject(e.Subject)
	}
	if e.SchemaURL != "" {
		ev.SetDataSchema(e.SchemaURL)
	}
	if e.TypeVersion != "" {
		ev.SetExtension("eventtypeversion", e.TypeVersion)
	}
	for k, v := range e.Extensions {
		name := ceName(k)
		if name == "" {
			continue
		}
		if s, ok := v.(string); ok {
			ev.SetExtension(name, s)
		} else if b, err := json.Marshal(v); err == nil {
			ev.SetExtension(name, string(b))
		}
	}
	ct := e.ContentType
	if ct == "" && e.JSON != nil {
		ct = event.ApplicationJSON
	}
	if ct != "" {
		ev.SetDataContentType(ct)
	}
	ev.DataEncoded = e.payload()
	return ev
}

// check refuses an attribute, or an extension of text, with a control
// character: delivered in binary mode it would be a header that splits
// the request.
func (e Event) check() error {
	attrs := map[string]string{"id": e.ID, "source": e.Source, "type": e.Type, "eventTypeVersion": e.TypeVersion,
		"schemaURL": e.SchemaURL, "subject": e.Subject, "contentType": e.ContentType}
	for k, v := range e.Extensions {
		if s, ok := v.(string); ok {
			attrs["extension "+k] = s
		}
	}
	for k, v := range attrs {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c == 0x7f {
				return fmt.Errorf("attribute %q has a control character (%q at byte %d): remove it", k, c, i)
			}
		}
	}
	return nil
}

// ceName makes an extension name a CloudEvents 1.0 one.
func ceName(k string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(k) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// payload is the data's bytes.
func (e Event) payload() []byte {
	if e.Data == nil && e.JSON != nil {
		return e.JSON
	}
	return e.Data
}

// envelope01 is a CloudEvent 0.1 as the Event Gateway sends it to functions
// (its event/event.go), in its field order; D is the data's type: any to
// write one, json.RawMessage to read one.
type envelope01[D any] struct {
	EventType          string         `json:"eventType"`
	EventTypeVersion   string         `json:"eventTypeVersion,omitempty"`
	CloudEventsVersion string         `json:"cloudEventsVersion"`
	Source             string         `json:"source"`
	EventID            string         `json:"eventID"`
	EventTime          *time.Time     `json:"eventTime,omitempty"`
	SchemaURL          string         `json:"schemaURL,omitempty"`
	Extensions         map[string]any `json:"extensions,omitempty"`
	ContentType        string         `json:"contentType,omitempty"`
	Data               D              `json:"data"`
}

// envelope is the event in the Event Gateway's form. Data that is JSON goes
// as it is; other bytes as the Event Gateway shapes them (normalize).
func (e Event) envelope() envelope01[any] {
	env := envelope01[any]{EventType: e.Type, EventTypeVersion: e.TypeVersion, CloudEventsVersion: "0.1", Source: e.Source,
		EventID: e.ID, SchemaURL: e.SchemaURL, Extensions: e.Extensions, ContentType: e.ContentType}
	if !e.Time.IsZero() {
		t := e.Time
		env.EventTime = &t
	}
	if e.JSON != nil {
		env.Data = e.JSON
	} else {
		env.Data = normalize(e.Data, e.ContentType)
	}
	return env
}

// normalize shapes a payload as the Event Gateway's normalizePayload does:
// a JSON object for exactly application/json (or +json) when it parses as
// one, a string for form encodings, base64 for anything else, "" when empty.
func normalize(b []byte, contentType string) any {
	if len(b) == 0 {
		return ""
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case contentType == "application/json" || strings.HasSuffix(contentType, "+json"):
		var obj map[string]any
		if json.Unmarshal(b, &obj) == nil {
			return json.RawMessage(b)
		}
	case strings.HasPrefix(mt, "multipart/form-data") || contentType == "application/x-www-form-urlencoded":
		return string(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// render is what a function receives for the event in a format: the
// request's headers and body.
func (e Event) render(ctx context.Context, format string) (http.Header, []byte, error) {
	switch format {
	case FormatEG01:
		b, err := json.Marshal(e.envelope())
		if err != nil {
			return nil, nil, err
		}
		return http.Header{"Content-Type": {"application/cloudevents+json"}}, b, nil
	case FormatCEStructured:
		b, err := json.Marshal(e.ce())
		if err != nil {
			return nil, nil, err
		}
		return http.Header{"Content-Type": {"application/cloudevents+json"}}, b, nil
	}
	ev := e.ce()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", nil)
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&ev), req); err != nil {
		return nil, nil, err
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	return req.Header, body, nil
}

// parse01 reads a CloudEvent 0.1 in structured form and checks it as the
// Event Gateway does (eventType, cloudEventsVersion, source as a URI or an
// absolute path, eventID).
func parse01(body []byte) (Event, error) {
	var env envelope01[json.RawMessage]
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, fmt.Errorf("CloudEvent doesn't validate: %v", err)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"eventType", env.EventType}, {"cloudEventsVersion", env.CloudEventsVersion},
		{"source", env.Source}, {"eventID", env.EventID}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Event{}, fmt.Errorf("CloudEvent doesn't validate: %s required", strings.Join(missing, ", "))
	}
	if err := validSource(env.Source); err != nil {
		return Event{}, err
	}
	e := Event{ID: env.EventID, Source: env.Source, Type: env.EventType, TypeVersion: env.EventTypeVersion,
		SchemaURL: env.SchemaURL, ContentType: env.ContentType, Extensions: env.Extensions}
	if env.EventTime != nil {
		e.Time = *env.EventTime
	}
	if len(env.Data) > 0 && string(env.Data) != "null" {
		e.JSON = env.Data
	}
	return e, nil
}

func validSource(s string) error {
	if u, err := url.Parse(s); err != nil || (!u.IsAbs() && !strings.HasPrefix(s, "/")) {
		return fmt.Errorf("CloudEvent doesn't validate: source %q must be a URI or an absolute path", s)
	}
	return nil
}

// is01Binary reports the Event Gateway's binary mode: CE-EventType,
// CE-CloudEventsVersion, CE-Source and CE-EventID all set.
func is01Binary(h http.Header) bool {
	return h.Get("CE-EventType") != "" && h.Get("CE-CloudEventsVersion") != "" && h.Get("CE-Source") != "" && h.Get("CE-EventID") != ""
}

// parse01Binary reads a CloudEvent 0.1 in binary mode: its attributes in
// CE-* headers (extensions CE-X-*), the body its data.
func parse01Binary(h http.Header, body []byte) (Event, error) {
	e := Event{ID: h.Get("CE-EventID"), Source: h.Get("CE-Source"), Type: h.Get("CE-EventType"),
		TypeVersion: h.Get("CE-EventTypeVersion"), SchemaURL: h.Get("CE-SchemaURL"), ContentType: h.Get("Content-Type"),
		Data: body}
	if err := validSource(e.Source); err != nil {
		return Event{}, err
	}
	if v := h.Get("CE-EventTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return Event{}, fmt.Errorf("CloudEvent doesn't validate: CE-EventTime %q is not an RFC 3339 time", v)
		}
		e.Time = t
	}
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, "Ce-X-"); ok && name != "" {
			if e.Extensions == nil {
				e.Extensions = map[string]any{}
			}
			e.Extensions[strings.ToLower(name[:1])+name[1:]] = strings.Join(v, ", ")
		}
	}
	return e, nil
}

// gatewayExtensions mark an event nimbus made from a request, as the Event
// Gateway marks its own.
func gatewayExtensions() map[string]any {
	return map[string]any{"eventgateway": map[string]string{"transformation-version": "0.1", "transformed": "true"}}
}

// gatewaySource is the source of events nimbus makes, as the Event Gateway's.
const gatewaySource = "https://serverless.com/event-gateway/#transformationVersion=0.1"

// httpRequestData is the data of an http.request event, as the Event
// Gateway shapes it (event/http.go): headers flattened (Host apart), query
// values as arrays, the body normalized, params only for sync matches.
type httpRequestData struct {
	Headers map[string]string   `json:"headers"`
	Query   map[string][]string `json:"query"`
	Body    any                 `json:"body"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Method  string              `json:"method"`
	Params  map[string]string   `json:"params"`
}

// httpRequestEvent makes an http.request event of a plain request.
func httpRequestEvent(r *http.Request, body []byte, params map[string]string, id string) Event {
	d := httpRequestData{Headers: map[string]string{}, Query: map[string][]string{}, Host: r.Host, Path: r.URL.Path,
		Method: r.Method, Params: params, Body: normalize(body, r.Header.Get("Content-Type"))}
	for k, v := range r.Header {
		d.Headers[k] = strings.Join(v, ", ")
	}
	for k, v := range r.URL.Query() {
		d.Query[k] = v
	}
	b, _ := json.Marshal(d)
	return Event{ID: id, Source: gatewaySource, Type: HTTPRequest, Time: time.Now().UTC(), ContentType: "application/json",
		Extensions: gatewayExtensions(), JSON: b}
}

// legacyEvent: a request with an Event header (the Event Gateway's legacy
// mode) is an event of that type with the body as its data — or, when the
// body is JSON that is a CloudEvent 0.1, that event.
func legacyEvent(r *http.Request, body []byte, id string) Event {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		if e, err := parse01(body); err == nil {
			return e
		}
	}
	if mt == "" {
		mt = "application/octet-stream"
	}
	return Event{ID: id, Source: gatewaySource, Type: r.Header.Get("Event"), Time: time.Now().UTC(), ContentType: mt,
		Extensions: gatewayExtensions(), Data: body}
}

// reply is a function's answer to a sync event.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// envelopeReply reads the Event Gateway's sync answer {statusCode,
// headers, body}: a JSON object with no other keys, of the right types. ok
// is false for anything else, which then goes to the caller as it is.
func envelopeReply(r reply) (reply, bool) {
	if r.status < 200 || r.status > 299 {
		return r, false
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimSpace(r.body), &raw) != nil || len(raw) == 0 {
		return r, false
	}
	for k := range raw {
		if k != "statusCode" && k != "headers" && k != "body" {
			return r, false
		}
	}
	var env struct {
		StatusCode *int              `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       *string           `json:"body"`
	}
	if json.Unmarshal(r.body, &env) != nil {
		return r, false
	}
	out := reply{status: http.StatusOK, header: http.Header{}}
	if env.StatusCode != nil {
		if *env.StatusCode < 100 || *env.StatusCode > 999 {
			return r, false
		}
		out.status = *env.StatusCode
	}
	keys := make([]string, 0, len(env.Headers))
	for k := range env.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.header.Set(k, env.Headers[k])
	}
	if env.Body != nil {
		out.body = []byte(*env.Body)
	}
	return out, true
}
