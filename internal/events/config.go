package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"nimbus/internal/reqbody"
)

// ConfigAPI serves the Event Gateway's configuration API under
// /v1/spaces/{space}/ (eventtypes, functions, subscriptions, cors) and
// /v1/status, as the Event Gateway's httpapi and libkv define it: IDs of
// updates from the URL, unknown JSON fields ignored, lists newest ID first,
// its statuses and its messages. Errors are {"errors":[{"message"}]}.
type ConfigAPI struct {
	Store Store
	// CheckURL vets a function's provider.url (the outbound guard).
	CheckURL func(ctx context.Context, url string) error
}

// Route is a method and pattern the config API answers; Open ones need no
// credential.
type Route struct {
	Method, Pattern string
	Open            bool
	handler         http.Handler
}

// Routes lists what the config API answers.
func (a *ConfigAPI) Routes() []Route {
	out := []Route{{"GET", "/v1/status", true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK) // says nothing: open, as the Event Gateway's
	})}}
	for _, kind := range []string{KindEventTypes, KindFunctions, KindSubscriptions, KindCORS} {
		base := "/v1/spaces/{space}/" + kind
		out = append(out,
			Route{"GET", base, false, a.handle(kind, a.list)},
			Route{"POST", base, false, a.handle(kind, a.create)},
			Route{"GET", base + "/{id}", false, a.handle(kind, a.get)},
			Route{"PUT", base + "/{id}", false, a.handle(kind, a.update)},
			Route{"DELETE", base + "/{id}", false, a.handle(kind, a.remove)})
	}
	return out
}

// Register adds the routes to a mux, the closed ones wrapped by wrap
// (authentication).
func (a *ConfigAPI) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	for _, r := range a.Routes() {
		h := r.handler
		if !r.Open {
			h = wrap(h)
		}
		mux.Handle(r.Method+" "+r.Pattern, h)
	}
}

type kindHandler func(w http.ResponseWriter, r *http.Request, space, kind string)

func (a *ConfigAPI) handle(kind string, h kindHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		space := r.PathValue("space")
		if r.Method != http.MethodGet { // the Event Gateway reads any space
			if err := ValidateSpace(space); err != nil {
				writeErrors(w, http.StatusBadRequest, validation(kind, err))
				return
			}
		}
		h(w, r, space, kind)
	})
}

// WriteErrors answers in the Event Gateway's error shape.
func WriteErrors(w http.ResponseWriter, status int, msg string) { writeErrors(w, status, msg) }

func writeErrors(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"message": msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Names and messages, as the Event Gateway words them.
var (
	kindNames = map[string]string{KindEventTypes: "Event Type", KindFunctions: "Function", KindSubscriptions: "Subscription",
		KindCORS: "CORS configuration"}
	existsWord = map[string]string{KindEventTypes: "already exists", KindFunctions: "already registered",
		KindSubscriptions: "already exists", KindCORS: "already exists"}
)

func notFound(kind, id string) string { return fmt.Sprintf("%s %q not found.", kindNames[kind], id) }
func exists(kind, id string) string {
	return fmt.Sprintf("%s %q %s.", kindNames[kind], id, existsWord[kind])
}
func validation(kind string, err error) string {
	return fmt.Sprintf("%s doesn't validate. Validation error: %v", kindNames[kind], err)
}

// decode reads a body into v, refusing bodies over 64 KiB; unknown fields
// are ignored, as the Event Gateway ignores them.
func decode(w http.ResponseWriter, r *http.Request, kind string, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		if reqbody.IsTimeout(err) {
			w.Header().Set("Connection", "close")
			writeErrors(w, http.StatusRequestTimeout, "the request body did not arrive in time (the server's body deadline): send it whole, or faster")
			return false
		}
		writeErrors(w, http.StatusBadRequest, validation(kind, err))
		return false
	}
	return true
}

// id is the item an update, get or delete names. A CORS ID holds an
// escaped path ("GET%2Fhello") and is read as the client sent it, from the
// still-escaped URL, as the Event Gateway reads it.
func id(r *http.Request, kind string) string {
	if kind == KindCORS {
		p := r.URL.EscapedPath()
		return p[strings.LastIndexByte(p, '/')+1:]
	}
	return r.PathValue("id")
}

// parse reads, defaults and checks a value of kind for space. urlID, for
// an update, is the item's ID from the URL, which the body may leave out.
func (a *ConfigAPI) parse(w http.ResponseWriter, r *http.Request, space, kind, urlID string) (value any, id string, ok bool) {
	fail := func(status int, msg string) (any, string, bool) {
		writeErrors(w, status, msg)
		return nil, "", false
	}
	bodySpace := ""
	snap := a.Store.Snapshot()
	switch kind {
	case KindEventTypes:
		var t EventType
		if !decode(w, r, kind, &t) {
			return nil, "", false
		}
		if urlID != "" {
			t.Name = urlID
		}
		if err := t.Normalize(); err != nil {
			return fail(http.StatusBadRequest, validation(kind, err))
		}
		if t.AuthorizerID != "" {
			if _, ok := snap.Functions[Key(space, t.AuthorizerID)]; !ok {
				return fail(http.StatusBadRequest, "Authorizer function doesn't exists.")
			}
		}
		bodySpace, t.Space = t.Space, space
		value, id = t, t.Name
	case KindFunctions:
		var f Function
		if !decode(w, r, kind, &f) {
			return nil, "", false
		}
		if urlID != "" {
			f.FunctionID = urlID
		}
		check := func(u string) error { return a.CheckURL(r.Context(), u) }
		if a.CheckURL == nil {
			check = nil
		}
		if old, ok := a.Store.Snapshot().Functions[Key(space, f.FunctionID)]; ok && urlID != "" {
			// A body as GET shows it keeps the secrets it does not show.
			if f.Provider.AWSSecretAccessKey == "*****" {
				f.Provider.AWSSecretAccessKey = old.Provider.AWSSecretAccessKey
			}
			if f.Provider.AWSSessionToken == "*****" {
				f.Provider.AWSSessionToken = old.Provider.AWSSessionToken
			}
		}
		if err := f.Normalize(check); err != nil {
			return fail(http.StatusBadRequest, validation(kind, err))
		}
		bodySpace, f.Space = f.Space, space
		value, id = f, f.FunctionID
	case KindSubscriptions:
		var s Subscription
		if !decode(w, r, kind, &s) {
			return nil, "", false
		}
		older := s.Event != ""
		if err := s.Normalize(); err != nil {
			return fail(http.StatusBadRequest, validation(kind, err))
		}
		if urlID != "" {
			if _, ok := snap.Subscriptions[Key(space, urlID)]; !ok {
				return fail(http.StatusNotFound, notFound(kind, urlID))
			}
			if msg := changed(snap, space, urlID, s); msg != "" {
				return fail(http.StatusBadRequest, msg)
			}
		} else {
			if _, dup := snap.Subscriptions[Key(space, s.SubscriptionID)]; dup {
				return fail(http.StatusConflict, exists(kind, s.SubscriptionID))
			}
			if s.Type == Sync {
				if err := pathConflict(snap, space, s); err != nil {
					return fail(http.StatusBadRequest, "Subscription path conflict: "+err.Error())
				}
			}
			// The older form has no event types: it registers its own.
			if _, ok := snap.EventTypes[Key(space, s.EventType)]; !ok && !older {
				return fail(http.StatusBadRequest, notFound(KindEventTypes, s.EventType))
			}
		}
		if _, ok := snap.Functions[Key(space, s.FunctionID)]; !ok {
			return fail(http.StatusBadRequest, notFound(KindFunctions, s.FunctionID))
		}
		bodySpace, s.Space = s.Space, space
		value, id = s, s.SubscriptionID
	case KindCORS:
		var c CORS
		if !decode(w, r, kind, &c) {
			return nil, "", false
		}
		if err := c.Normalize(); err != nil {
			return fail(http.StatusBadRequest, validation(kind, err))
		}
		if urlID != "" {
			old, ok := snap.CORS[Key(space, urlID)]
			if !ok {
				return fail(http.StatusNotFound, notFound(kind, urlID))
			}
			for _, f := range []struct{ name, was, is string }{{"Method", old.Method, c.Method}, {"Path", old.Path, c.Path}} {
				if f.was != f.is {
					return fail(http.StatusBadRequest, "Invalid update. '"+f.name+"' of existing CORS configuration cannot be updated.")
				}
			}
		}
		bodySpace, c.Space = c.Space, space
		value, id = c, c.CORSID
	}
	// The older form repeats the space in the body: it must agree.
	if bodySpace != "" && bodySpace != space {
		return fail(http.StatusBadRequest, validation(kind, errors.New("the body's space "+bodySpace+" differs from the URL's "+space)))
	}
	return value, id, true
}

// changed says what an update of subscription id would change that cannot
// be changed ("" if nothing).
func changed(snap *Config, space, id string, s Subscription) string {
	old := snap.Subscriptions[Key(space, id)]
	for _, f := range []struct{ name, was, is string }{{"Type", old.Type, s.Type}, {"EventType", old.EventType, s.EventType},
		{"FunctionID", old.FunctionID, s.FunctionID}, {"Path", old.Path, s.Path}, {"Method", old.Method, s.Method}} {
		if f.was != f.is {
			return "Invalid update. '" + f.name + "' of existing subscription cannot be updated."
		}
	}
	return ""
}

func (a *ConfigAPI) create(w http.ResponseWriter, r *http.Request, space, kind string) {
	v, id, ok := a.parse(w, r, space, kind, "")
	if !ok {
		return
	}
	if s, isSub := v.(Subscription); isSub {
		if err := a.ensureEventType(r.Context(), space, s.EventType); err != nil {
			writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
			return
		}
	}
	b, _ := json.Marshal(v)
	switch err := a.Store.Create(r.Context(), space, kind, id, b); {
	case errors.Is(err, ErrExists):
		writeErrors(w, http.StatusConflict, exists(kind, id))
	case err != nil:
		writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
	default:
		writeJSON(w, http.StatusCreated, shown(v))
	}
}

// ensureEventType registers the event type of a subscription of the older
// form, which has none.
func (a *ConfigAPI) ensureEventType(ctx context.Context, space, name string) error {
	if _, ok := a.Store.Snapshot().EventTypes[Key(space, name)]; ok {
		return nil
	}
	b, _ := json.Marshal(EventType{Space: space, Name: name})
	if err := a.Store.Create(ctx, space, KindEventTypes, name, b); err != nil && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}

func (a *ConfigAPI) update(w http.ResponseWriter, r *http.Request, space, kind string) {
	urlID := id(r, kind)
	v, itemID, ok := a.parse(w, r, space, kind, urlID)
	if !ok {
		return
	}
	b, _ := json.Marshal(v)
	switch err := a.Store.Update(r.Context(), space, kind, itemID, b); {
	case errors.Is(err, ErrNotFound):
		writeErrors(w, http.StatusNotFound, notFound(kind, urlID))
	case err != nil:
		writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, shown(v))
	}
}

func (a *ConfigAPI) get(w http.ResponseWriter, r *http.Request, space, kind string) {
	itemID := id(r, kind)
	v, ok := lookup(a.Store.Snapshot(), kind, Key(space, itemID))
	if !ok {
		writeErrors(w, http.StatusNotFound, notFound(kind, itemID))
		return
	}
	writeJSON(w, http.StatusOK, shown(v))
}

// shown is an item as the API shows it: a function without its secrets.
func shown(v any) any {
	if f, ok := v.(Function); ok {
		return f.Redacted()
	}
	return v
}

func (a *ConfigAPI) remove(w http.ResponseWriter, r *http.Request, space, kind string) {
	itemID := id(r, kind)
	snap := a.Store.Snapshot()
	// In use is checked first, as the Event Gateway does.
	for _, s := range snap.Subscriptions {
		if s.Space != space {
			continue
		}
		if kind == KindFunctions && s.FunctionID == itemID {
			writeErrors(w, http.StatusBadRequest, "Function cannot be deleted because it's subscribed to a least one event.")
			return
		}
		if kind == KindEventTypes && s.EventType == itemID {
			writeErrors(w, http.StatusBadRequest, "Event type cannot be deleted because there are subscriptions using it.")
			return
		}
	}
	if kind == KindFunctions {
		for _, t := range snap.EventTypes {
			if t.Space == space && t.AuthorizerID == itemID {
				writeErrors(w, http.StatusBadRequest, fmt.Sprintf("Function %s cannot be deleted because is used as an authorizer for %s event type.", itemID, t.Name))
				return
			}
		}
	}
	switch err := a.Store.Delete(r.Context(), space, kind, itemID); {
	case errors.Is(err, ErrNotFound):
		writeErrors(w, http.StatusNotFound, notFound(kind, itemID))
	case err != nil:
		writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// list answers {eventTypes|functions|subscriptions|cors: [...]}, filtered by
// ?metadata.KEY=VALUE, by ID descending (the Event Gateway's order).
func (a *ConfigAPI) list(w http.ResponseWriter, r *http.Request, space, kind string) {
	want := map[string]string{}
	for k, v := range r.URL.Query() {
		if name, ok := strings.CutPrefix(k, "metadata."); ok && len(v) > 0 {
			want[name] = v[0]
		}
	}
	keep := func(md map[string]string) bool {
		for k, v := range want {
			if md[k] != v {
				return false
			}
		}
		return true
	}
	snap := a.Store.Snapshot()
	type item struct {
		id string
		v  any
	}
	var items []item
	add := func(sp, id string, md map[string]string, v any) {
		if sp == space && keep(md) {
			items = append(items, item{id, v})
		}
	}
	field := kind
	switch kind {
	case KindEventTypes:
		field = "eventTypes"
		for _, v := range snap.EventTypes {
			add(v.Space, v.Name, v.Metadata, v)
		}
	case KindFunctions:
		for _, v := range snap.Functions {
			add(v.Space, v.FunctionID, v.Metadata, v.Redacted())
		}
	case KindSubscriptions:
		for _, v := range snap.Subscriptions {
			add(v.Space, v.SubscriptionID, v.Metadata, v)
		}
	case KindCORS:
		for _, v := range snap.CORS {
			add(v.Space, v.CORSID, v.Metadata, v)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].id > items[j].id })
	out := make([]any, 0, len(items))
	for _, it := range items {
		out = append(out, it.v)
	}
	writeJSON(w, http.StatusOK, map[string]any{field: out})
}

func lookup(c *Config, kind, k string) (any, bool) {
	switch kind {
	case KindEventTypes:
		v, ok := c.EventTypes[k]
		return v, ok
	case KindFunctions:
		v, ok := c.Functions[k]
		return v, ok
	case KindSubscriptions:
		v, ok := c.Subscriptions[k]
		return v, ok
	case KindCORS:
		v, ok := c.CORS[k]
		return v, ok
	}
	return nil, false
}
