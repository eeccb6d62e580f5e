package events

import (
	"net/http"
	"path"
	"strconv"
	"strings"
)

// corsFor finds the CORS configuration of a method and request path: a
// CORS resource, or the older per-subscription form.
func corsFor(snap *Config, method, p string) (CORS, bool) {
	best, found := -1, CORS{}
	for _, c := range snap.CORS {
		if c.Method != method {
			continue
		}
		if _, score, ok := match(c.Path, p); ok && score > best {
			best, found = score, c
		}
	}
	if best >= 0 {
		return found, true
	}
	for _, s := range snap.Subscriptions {
		if s.CORS == nil || s.Method != method {
			continue
		}
		if _, _, ok := match(s.Path, p); ok {
			c := CORS{Method: s.Method, Path: s.Path, AllowedOrigins: s.CORS.Origins, AllowedMethods: s.CORS.Methods,
				AllowedHeaders: s.CORS.Headers, AllowCredentials: s.CORS.AllowCredentials}
			c.Normalize()
			return c, true
		}
	}
	return CORS{}, false
}

// originAllowed matches an origin against patterns where * stands for any
// characters ("http://*.example.com").
func originAllowed(c CORS, origin string) bool {
	for _, o := range c.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
		if strings.Contains(o, "*") {
			// path.Match's * does not cross '/', which an origin's host part has none of.
			if ok, _ := path.Match(o, origin); ok {
				return true
			}
		}
	}
	return false
}

func setAllowOrigin(w http.ResponseWriter, c CORS, origin string) {
	if c.AllowCredentials || !contains(c.AllowedOrigins, "*") {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	} else {
		w.Header().Set("Access-Control-Allow-Origin", "*")
	}
	if c.AllowCredentials {
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers an OPTIONS preflight request.
func preflight(w http.ResponseWriter, r *http.Request, snap *Config) {
	origin := r.Header.Get("Origin")
	c, ok := corsFor(snap, strings.ToUpper(r.Header.Get("Access-Control-Request-Method")), r.URL.Path)
	if ok && origin != "" && originAllowed(c, origin) {
		setAllowOrigin(w, c, origin)
		w.Header().Set("Access-Control-Allow-Methods", strings.Join(c.AllowedMethods, ", "))
		w.Header().Set("Access-Control-Allow-Headers", strings.Join(c.AllowedHeaders, ", "))
		w.Header().Set("Access-Control-Max-Age", strconv.Itoa(600))
	}
	w.WriteHeader(http.StatusNoContent)
}

// allowCORS adds the CORS response headers to an actual request.
func allowCORS(w http.ResponseWriter, r *http.Request, snap *Config) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	if c, ok := corsFor(snap, r.Method, r.URL.Path); ok && originAllowed(c, origin) {
		setAllowOrigin(w, c, origin)
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
