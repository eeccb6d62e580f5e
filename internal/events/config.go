package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	"nimbus/internal/reqbody"
)

// ConfigAPI serves the Event Gateway's configuration API under
// /v1/spaces/{space}/ (eventtypes, functions, subscriptions, cors) and
// /v1/status. Errors are the Event Gateway's {"errors":[{"message"}]}.
type ConfigAPI struct {
	Store Store
	// CheckURL vets a function's provider.url (the outbound guard).
	CheckURL func(ctx context.Context, url string) error
}

// Route is a method and pattern the config API answers.
type Route struct {
	Method, Pattern string
	handler         http.Handler
}

// Routes lists what the config API answers.
func (a *ConfigAPI) Routes() []Route {
	out := []Route{{"GET", "/v1/status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})}}
	for _, kind := range []string{KindEventTypes, KindFunctions, KindSubscriptions, KindCORS} {
		base := "/v1/spaces/{space}/" + kind
		out = append(out,
			Route{"GET", base, a.handle(kind, a.list)},
			Route{"POST", base, a.handle(kind, a.create)},
			Route{"GET", base + "/{id}", a.handle(kind, a.get)},
			Route{"PUT", base + "/{id}", a.handle(kind, a.update)},
			Route{"DELETE", base + "/{id}", a.handle(kind, a.remove)})
	}
	return out
}

// Register adds the routes to a mux, each wrapped by wrap (authentication).
func (a *ConfigAPI) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	for _, r := range a.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, wrap(r.handler))
	}
}

type kindHandler func(w http.ResponseWriter, r *http.Request, space, kind string)

func (a *ConfigAPI) handle(kind string, h kindHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		space := r.PathValue("space")
		if err := ValidateSpace(space); err != nil {
			writeErrors(w, http.StatusBadRequest, err.Error())
			return
		}
		h(w, r, space, kind)
	})
}

func writeErrors(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"message": msg}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode reads a body into v, refusing bodies over 64 KiB and, if strict,
// unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if reqbody.IsTimeout(err) {
			w.Header().Set("Connection", "close")
			writeErrors(w, http.StatusRequestTimeout, "the request body did not arrive in time (the server's body deadline): send it whole, or faster")
			return false
		}
		writeErrors(w, http.StatusBadRequest, "the body is not valid JSON for this resource: "+err.Error())
		return false
	}
	return true
}

// parse reads, defaults and checks a value of kind for space; id is the
// value's ID as the body gives it or as Normalize sets it.
func (a *ConfigAPI) parse(w http.ResponseWriter, r *http.Request, space, kind string) (value any, id string, ok bool) {
	fail := func(err error) (any, string, bool) {
		writeErrors(w, http.StatusBadRequest, err.Error())
		return nil, "", false
	}
	bodySpace := ""
	switch kind {
	case KindEventTypes:
		var t EventType
		if !decode(w, r, &t, true) {
			return nil, "", false
		}
		if err := t.Normalize(); err != nil {
			return fail(err)
		}
		bodySpace, t.Space = t.Space, space
		value, id = t, t.Name
	case KindFunctions:
		var f Function
		// Lenient: the Event Gateway's other provider types have their own
		// fields; the type check names what is wrong.
		if !decode(w, r, &f, false) {
			return nil, "", false
		}
		check := func(u string) error { return a.CheckURL(r.Context(), u) }
		if a.CheckURL == nil {
			check = nil
		}
		if err := f.Normalize(check); err != nil {
			return fail(err)
		}
		bodySpace, f.Space = f.Space, space
		value, id = f, f.FunctionID
	case KindSubscriptions:
		var s Subscription
		if !decode(w, r, &s, true) {
			return nil, "", false
		}
		if err := s.Normalize(); err != nil {
			return fail(err)
		}
		bodySpace, s.Space = s.Space, space
		snap := a.Store.Snapshot()
		if _, ok := snap.Functions[Key(space, s.FunctionID)]; !ok {
			return fail(errors.New("function " + s.FunctionID + " is not registered in space " + space))
		}
		value, id = s, s.SubscriptionID
	case KindCORS:
		var c CORS
		if !decode(w, r, &c, true) {
			return nil, "", false
		}
		if err := c.Normalize(); err != nil {
			return fail(err)
		}
		bodySpace, c.Space = c.Space, space
		value, id = c, c.CORSID
	}
	// The older form repeats the space in the body: it must agree.
	if bodySpace != "" && bodySpace != space {
		return fail(errors.New("the body's space " + bodySpace + " differs from the URL's " + space))
	}
	return value, id, true
}

func (a *ConfigAPI) create(w http.ResponseWriter, r *http.Request, space, kind string) {
	v, id, ok := a.parse(w, r, space, kind)
	if !ok {
		return
	}
	if s, isSub := v.(Subscription); isSub {
		// The older form carries no event types: an event type a
		// subscription names is registered with it if missing.
		if err := a.ensureEventType(r.Context(), space, s.EventType); err != nil {
			writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
			return
		}
	}
	b, _ := json.Marshal(v)
	switch err := a.Store.Create(r.Context(), space, kind, id, b); {
	case errors.Is(err, ErrExists):
		writeErrors(w, http.StatusConflict, strings.TrimSuffix(kind, "s")+" "+id+" already exists in space "+space)
	case err != nil:
		writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
	default:
		writeJSON(w, http.StatusCreated, v)
	}
}

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
	v, id, ok := a.parse(w, r, space, kind)
	if !ok {
		return
	}
	if kind != KindSubscriptions && kind != KindCORS && id != r.PathValue("id") {
		writeErrors(w, http.StatusBadRequest, "the body's ID "+id+" differs from the URL's "+r.PathValue("id"))
		return
	}
	if (kind == KindSubscriptions || kind == KindCORS) && id != r.PathValue("id") {
		// Their IDs derive from type, event type, function, path and method.
		writeErrors(w, http.StatusBadRequest, "type, eventType, functionId, path and method cannot be changed; delete and create instead")
		return
	}
	b, _ := json.Marshal(v)
	switch err := a.Store.Update(r.Context(), space, kind, id, b); {
	case errors.Is(err, ErrNotFound):
		writeErrors(w, http.StatusNotFound, strings.TrimSuffix(kind, "s")+" "+id+" not found in space "+space)
	case err != nil:
		writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func (a *ConfigAPI) get(w http.ResponseWriter, r *http.Request, space, kind string) {
	v, ok := lookup(a.Store.Snapshot(), kind, Key(space, r.PathValue("id")))
	if !ok {
		writeErrors(w, http.StatusNotFound, strings.TrimSuffix(kind, "s")+" "+r.PathValue("id")+" not found in space "+space)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *ConfigAPI) remove(w http.ResponseWriter, r *http.Request, space, kind string) {
	id := r.PathValue("id")
	snap := a.Store.Snapshot()
	for _, s := range snap.Subscriptions {
		if s.Space != space {
			continue
		}
		if (kind == KindFunctions && s.FunctionID == id) || (kind == KindEventTypes && s.EventType == id) {
			writeErrors(w, http.StatusBadRequest, strings.TrimSuffix(kind, "s")+" "+id+" is used by subscription "+s.SubscriptionID+"; delete that first")
			return
		}
	}
	switch err := a.Store.Delete(r.Context(), space, kind, id); {
	case errors.Is(err, ErrNotFound):
		writeErrors(w, http.StatusNotFound, strings.TrimSuffix(kind, "s")+" "+id+" not found in space "+space)
	case err != nil:
		writeErrors(w, http.StatusServiceUnavailable, "the configuration store is unavailable: "+err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// list answers {eventTypes|functions|subscriptions|cors: [...]}, filtered by
// ?metadata.KEY=VALUE.
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
	var out []any
	var ids []string
	add := func(sp, id string, md map[string]string, v any) {
		if sp == space && keep(md) {
			ids = append(ids, id)
			out = append(out, v)
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
			add(v.Space, v.FunctionID, v.Metadata, v)
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
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(i, j int) bool { return ids[idx[i]] < ids[idx[j]] })
	sorted := make([]any, 0, len(out))
	for _, i := range idx {
		sorted = append(sorted, out[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{field: sorted})
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
