package events

import (
	"bytes"
	"context"
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

// requestEvents reads the events a request carries, in the order the Event
// Gateway looks for them: a structured CloudEvent (0.1, or 1.0 and its
// batches), a binary one (0.1's CE-* headers, 1.0's ce-*), a legacy event
// (the Event header); nil for none (a plain request: http.request).
func requestEvents(r *http.Request, body []byte, callID string, legacy bool) ([]Event, error) {
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, fmt.Errorf("Content-Type %q: %v", ct, err)
		}
	}
	var evs []Event
	switch {
	case mt == "application/cloudevents+json" && is01JSON(body):
		e, err := parse01(body)
		if err != nil {
			return nil, err
		}
		evs = []Event{e}
	case is01Binary(r.Header):
		e, err := parse01Binary(r.Header, body)
		if err != nil {
			return nil, err
		}
		evs = []Event{e}
	case isCloudEvent(r.Header):
		ces, err := parseCloudEvents(r, body)
		if err != nil {
			return nil, err
		}
		for _, ce := range ces {
			evs = append(evs, eventFromCE(ce))
		}
	case legacy && r.Header.Get("Event") != "":
		evs = []Event{legacyEvent(r, body, callID)}
	default:
		return nil, nil
	}
	for _, e := range evs {
		if strings.HasPrefix(e.Type, systemPrefix) {
			return nil, fmt.Errorf("event type %q: types starting with %q are the Event Gateway's own; nimbus takes none from outside", e.Type, systemPrefix)
		}
		// Whatever the version or mode it came in, an event's attributes
		// may become headers of a delivery (ce-1.0-binary).
		if err := e.check(); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// is01JSON reports a structured CloudEvent 0.1 (it has cloudEventsVersion,
// where 1.0 has specversion).
func is01JSON(body []byte) bool {
	var probe struct {
		V *string `json:"cloudEventsVersion"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.V != nil
}

// CloudEvents serves POST /events: each event (CloudEvents 1.0 or 0.1, in
// any mode) goes to every async subscription to its type (of one space
// with ?space=, else of all), one durable delivery each. 202 once every
// delivery is stored.
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
		evs, err := requestEvents(r, body, "", false)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		if evs == nil {
			writeErrors(w, http.StatusBadRequest, "not a CloudEvent: send binary mode (ce-specversion, ce-id, ce-source, ce-type headers) or Content-Type application/cloudevents+json")
			return
		}
		snap := in.Store.Snapshot()
		n := 0
		for _, ev := range evs {
			for _, sub := range snap.Subscriptions {
				if sub.Type != Async || sub.EventType != ev.Type || (space != "" && sub.Space != space) {
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

func (in *Ingress) enqueue(ctx context.Context, snap *Config, ev Event, sub Subscription) error {
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

// EventsAPI serves the Event Gateway's events API: a request on a
// subscribed path and method becomes an event — its CloudEvent(s), a legacy
// Event-header event, or an http.request event — delivered to the async
// subscribers durably, and to the sync subscriber, whose answer is the
// response: its {statusCode, headers, body} if it answers that, else its
// own response as it is. Without a sync subscriber the answer is 202, as
// from the Event Gateway, whether or not anything subscribed.
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
		evs, err := requestEvents(r, body, callID, true)
		if err != nil {
			writeErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		plain := evs == nil
		if plain {
			evs = []Event{{Type: HTTPRequest}} // built below, with the matched params
		}
		var sync *Subscription
		var syncParams map[string]string
		best := -1
		for _, ev := range evs {
			for _, sub := range snap.Subscriptions {
				if sub.Method != r.Method || sub.EventType != ev.Type {
					continue
				}
				params, score, ok := match(sub.Path, r.URL.Path)
				if !ok {
					continue
				}
				if sub.Type == Sync {
					if score > best {
						s := sub
						sync, syncParams, best = &s, params, score
					}
					continue
				}
				e := ev
				if plain {
					e = httpRequestEvent(r, body, nil, callID)
				}
				if err := in.enqueue(r.Context(), snap, e, sub); err != nil {
					in.unavailable(w, err)
					return
				}
			}
		}
		allowCORS(w, r, snap)
		if sync == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		ev := evs[0]
		if plain {
			if syncParams == nil && sync.Path != "/" {
				syncParams = map[string]string{}
			}
			ev = httpRequestEvent(r, body, syncParams, callID)
		}
		fn, ok := snap.Functions[Key(sync.Space, sync.FunctionID)]
		if !ok {
			writeErrors(w, http.StatusInternalServerError, "the subscription's function "+sync.FunctionID+" is not registered")
			return
		}
		res, err := in.Deliver.Invoke(r.Context(), ev, *sync, fn, callID)
		if err != nil {
			if in.Logger != nil {
				in.Logger.Warn("sync subscriber failed", "space", sync.Space, "function", sync.FunctionID, "call", callID, "err", err)
			}
			writeErrors(w, http.StatusInternalServerError, "function "+sync.FunctionID+" failed (call id "+callID+"): its logs and 'nimbus calls get "+callID+"' say why")
			return
		}
		if env, ok := envelopeReply(res); ok {
			res = env
		}
		for k, v := range res.header {
			if !hopHeader(k) {
				w.Header()[k] = v
			}
		}
		w.Header().Set("X-Call-Id", callID)
		w.WriteHeader(res.status)
		w.Write(res.body)
	})
}

// hopHeader: headers of a function's answer that are not passed on.
func hopHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Trailer", "Upgrade", "Proxy-Connection", "Te":
		return true
	}
	return false
}
