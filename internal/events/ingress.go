package events

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"nimbus/internal/gateway"
	"nimbus/internal/reqbody"
)

// Ingress accepts events: the Event Gateway's events API (EventsAPI, on its
// own listener) and CloudEvents 1.0 at /events (CloudEvents).
type Ingress struct {
	Store   Store
	Deliver *Deliverer
	// MaxBodyBytes bounds an event (413 beyond). Default 6 MiB.
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Space, if set, says why the disk cannot take an event now (503).
	Space func() error
}

func (in *Ingress) limit() int64 {
	if in.MaxBodyBytes > 0 {
		return in.MaxBodyBytes
	}
	return 6 << 20
}

// readBody reads the whole body within the limit, or answers 413/400 (or
// 503 while the disk is full).
func (in *Ingress) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if in.Space != nil {
		if err := in.Space(); err != nil {
			w.Header().Set("Retry-After", "5")
			writeErrors(w, http.StatusServiceUnavailable, "the event was not accepted: "+err.Error())
			return nil, false
		}
	}
	if r.ContentLength > in.limit() {
		writeErrors(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is %d bytes; the limit is %d", r.ContentLength, in.limit()))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.limit()))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErrors(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds the limit of %d bytes", in.limit()))
		} else if reqbody.IsTimeout(err) {
			w.Header().Set("Connection", "close")
			writeErrors(w, http.StatusRequestTimeout, "the request body did not arrive in time (the server's body deadline): send it whole, or faster")
		} else {
			writeErrors(w, http.StatusBadRequest, "reading the body failed: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

// isCloudEvent reports whether a request carries CloudEvents (binary,
// structured or batch mode).
func isCloudEvent(h http.Header) bool {
	if h.Get("Ce-Specversion") != "" {
		return true
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return strings.HasPrefix(mt, "application/cloudevents")
}

// specVersions are the CloudEvents versions nimbus takes.
const specVersions = `"1.0"`

// checkNames enforces what CloudEvents 1.0 says of attribute names (lower-case
// letters and digits; binary-mode header names are case-insensitive) and of
// specversion, naming what is wrong — the SDK's own message names neither.
func checkNames(r *http.Request, body []byte) error {
	bad := func(name string) error {
		return fmt.Errorf("attribute name %q is not valid: CloudEvents 1.0 attribute names are lower-case letters and digits only", name)
	}
	version := func(v string) error {
		if v != event.CloudEventsVersionV1 {
			return fmt.Errorf("specversion %q is not supported: nimbus takes %s", v, specVersions)
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "application/cloudevents") {
		for k, v := range r.Header {
			name, ok := strings.CutPrefix(strings.ToLower(k), "ce-")
			if !ok {
				continue
			}
			if !alnum(name, true) {
				return bad(k[3:])
			}
			if name == "specversion" && len(v) > 0 {
				if err := version(v[0]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var objs []map[string]json.RawMessage
	if strings.HasPrefix(mt, "application/cloudevents-batch") {
		if json.Unmarshal(body, &objs) != nil {
			return nil // the SDK says what is wrong with the batch
		}
	} else {
		var o map[string]json.RawMessage
		if json.Unmarshal(body, &o) != nil {
			return nil
		}
		objs = append(objs, o)
	}
	for _, o := range objs {
		for k, v := range o {
			if !alnum(k, false) {
				return bad(k)
			}
			if k == "specversion" {
				var sv string
				if json.Unmarshal(v, &sv) != nil {
					return fmt.Errorf("specversion must be a string: nimbus takes %s", specVersions)
				}
				if err := version(sv); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func alnum(s string, upper bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || upper && c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// checkValues refuses an event whose attributes carry control characters:
// delivered in binary mode they would become request headers.
func checkValues(ev event.Event) error {
	attrs := map[string]string{"id": ev.ID(), "source": ev.Source(), "type": ev.Type(), "subject": ev.Subject(),
		"datacontenttype": ev.DataContentType(), "dataschema": ev.DataSchema()}
	for k, v := range ev.Extensions() {
		attrs[k] = fmt.Sprint(v)
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

// parseCloudEvents reads the CloudEvents of a request whose body was read,
// and checks each has the required attributes.
func parseCloudEvents(r *http.Request, body []byte) ([]event.Event, error) {
	if err := checkNames(r, body); err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var evs []event.Event
	if cehttp.IsHTTPBatch(r.Header) {
		list, err := cehttp.NewEventsFromHTTPRequest(r)
		if err != nil {
			return nil, fmt.Errorf("not a CloudEvents batch (a JSON array of structured events): %v", err)
		}
		evs = list
	} else {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			return nil, fmt.Errorf("not a CloudEvent: %v (send binary mode with ce-specversion, ce-id, ce-source and ce-type headers, or structured mode as application/cloudevents+json)", err)
		}
		evs = []event.Event{*ev}
	}
	for i, ev := range evs {
		if err := ev.Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %s", i, describeValidation(err))
		}
		if ev.SpecVersion() != event.CloudEventsVersionV1 {
			return nil, fmt.Errorf("event %d: specversion %q is not supported: nimbus takes %s", i, ev.SpecVersion(), specVersions)
		}
		if err := checkValues(ev); err != nil {
			return nil, fmt.Errorf("event %d: %v", i, err)
		}
	}
	return evs, nil
}

// describeValidation names each missing or invalid attribute.
func describeValidation(err error) string {
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var parts []string
	for attr, e := range ve {
		parts = append(parts, fmt.Sprintf("attribute %q: %v", attr, e))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// CloudEvents serves POST /events: each event goes to every async
// subscription to its type (of one space with ?space=, else of all), one
// durable delivery each. 202 once every delivery is stored.
func (in *Ingress) CloudEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeErrors(w, http.StatusMethodNotAllowed, "events are POSTed")
			return
		}
		space := r.URL.Query().Get("space")
		body, ok := in.readBody(w, r)
		if !ok {
			return
		}
		if !isCloudEvent(r.Header) {
			writeErrors(w, http.StatusBadRequest, "not a CloudEvent: send binary mode (ce-specversion, ce-id, ce-source, ce-type headers) or Content-Type application/cloudevents+json")
			return
		}
		evs, err := parseCloudEvents(r, body)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		snap := in.Store.Snapshot()
		n := 0
		for _, ev := range evs {
			for _, sub := range snap.Subscriptions {
				if sub.Type != Async || sub.EventType != ev.Type() || (space != "" && sub.Space != space) {
					continue
				}
				if err := in.enqueue(r.Context(), snap, ev, sub); err != nil {
					in.unavailable(w, err)
					return
				}
				n++
			}
		}
		writeJSON(w, http.StatusAccepted, map[string]int{"events": len(evs), "deliveries": n})
	})
}

func (in *Ingress) enqueue(ctx context.Context, snap *Config, ev event.Event, sub Subscription) error {
	fn, ok := snap.Functions[Key(sub.Space, sub.FunctionID)]
	if !ok {
		return nil // deleted meanwhile (a subscription's function cannot be deleted first)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return in.Deliver.Enqueue(ctx, ev, sub, fn)
}

func (in *Ingress) unavailable(w http.ResponseWriter, err error) {
	if in.Logger != nil {
		in.Logger.Warn("event not accepted: a delivery could not be stored", "err", err)
	}
	w.Header().Set("Retry-After", "1")
	writeErrors(w, http.StatusServiceUnavailable, "the event was not accepted (a delivery could not be stored); retry — a repeated event (same source and id) is delivered once")
}

// httpRequestData is the data of an http.request event.
type httpRequestData struct {
	Path    string            `json:"path"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Host    string            `json:"host"`
	Query   map[string]string `json:"query"`
	Params  map[string]string `json:"params"`
	Body    any               `json:"body"`
}

// httpRequestEvent wraps a plain request as an http.request CloudEvent.
// The body is JSON if the request said so and it parses, a string if it is
// UTF-8 text, else base64.
func httpRequestEvent(r *http.Request, body []byte, params map[string]string, id string) event.Event {
	d := httpRequestData{Path: r.URL.Path, Method: r.Method, Headers: map[string]string{}, Host: r.Host,
		Query: map[string]string{}, Params: params}
	for k, v := range r.Header {
		d.Headers[k] = strings.Join(v, ", ")
	}
	for k, v := range r.URL.Query() {
		d.Query[k] = strings.Join(v, ", ")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(body) == 0:
	case (mt == "application/json" || strings.HasSuffix(mt, "+json")) && json.Valid(body):
		d.Body = json.RawMessage(body)
	case utf8.Valid(body):
		d.Body = string(body)
	default:
		d.Body = base64.StdEncoding.EncodeToString(body)
	}
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("/nimbus/event-gateway")
	ev.SetType(HTTPRequest)
	ev.SetTime(time.Now().UTC())
	ev.SetData(event.ApplicationJSON, d)
	return ev
}

// legacyEvent: a request with an Event header (the Event Gateway's legacy
// mode) is an event of that type with the body as its data.
func legacyEvent(r *http.Request, body []byte, id string) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("/nimbus/event-gateway")
	ev.SetType(r.Header.Get("Event"))
	ev.SetTime(time.Now().UTC())
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	ev.SetDataContentType(ct)
	ev.DataEncoded = body
	return ev
}

// EventsAPI serves the Event Gateway's events API: a request on a
// subscribed path and method becomes an event — its CloudEvent(s), a legacy
// Event-header event, or an http.request event — delivered to the async
// subscribers durably, and to the sync subscriber, whose answer
// {statusCode, headers, body} is the response. Without a sync subscriber
// the answer is 202.
func (in *Ingress) EventsAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := in.Store.Snapshot()
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			preflight(w, r, snap)
			return
		}
		body, ok := in.readBody(w, r)
		if !ok {
			return
		}
		callID, _ := gateway.Correlate(r.Header)
		w.Header().Set("X-Call-Id", callID)
		var evs []event.Event
		switch {
		case isCloudEvent(r.Header):
			var err error
			if evs, err = parseCloudEvents(r, body); err != nil {
				writeErrors(w, http.StatusBadRequest, err.Error())
				return
			}
		case r.Header.Get("Event") != "":
			evs = []event.Event{legacyEvent(r, body, callID)}
		default:
			evs = []event.Event{{}} // http.request, built below with the matched params
		}
		var sync *Subscription
		var syncParams map[string]string
		best, matched := -1, 0
		for _, ev := range evs {
			evType := ev.Type()
			if ev.Context == nil {
				evType = HTTPRequest
			}
			for _, sub := range snap.Subscriptions {
				if sub.Method != r.Method || sub.EventType != evType {
					continue
				}
				params, score, ok := match(sub.Path, r.URL.Path)
				if !ok {
					continue
				}
				matched++
				if sub.Type == Sync {
					if score > best {
						s := sub
						sync, syncParams, best = &s, params, score
					}
					continue
				}
				e := ev
				if ev.Context == nil {
					e = httpRequestEvent(r, body, params, callID)
				}
				if err := in.enqueue(r.Context(), snap, e, sub); err != nil {
					in.unavailable(w, err)
					return
				}
			}
		}
		allowCORS(w, r, snap)
		if sync == nil {
			if matched == 0 && evs[0].Context == nil {
				writeErrors(w, http.StatusNotFound, "no subscription for "+r.Method+" "+r.URL.Path)
				return
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
		ev := evs[0]
		if ev.Context == nil {
			ev = httpRequestEvent(r, body, syncParams, callID)
		}
		fn, ok := snap.Functions[Key(sync.Space, sync.FunctionID)]
		if !ok {
			writeErrors(w, http.StatusInternalServerError, "the subscription's function "+sync.FunctionID+" is not registered")
			return
		}
		res, err := in.Deliver.Invoke(r.Context(), ev, sync.Space, fn, callID)
		if err != nil {
			if in.Logger != nil {
				in.Logger.Warn("sync subscriber failed", "space", sync.Space, "function", sync.FunctionID, "call", callID, "err", err)
			}
			writeErrors(w, http.StatusInternalServerError, "function "+sync.FunctionID+" failed (call id "+callID+"): its logs and 'nimbus calls get "+callID+"' say why")
			return
		}
		for k, v := range res.Headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("X-Call-Id", callID)
		w.WriteHeader(res.StatusCode)
		io.WriteString(w, res.Body)
	})
}
