package events

import (
	"errors"
	"fmt"
	"strings"
)

// validatePath checks a subscription path: it starts with /; a segment
// ":name" is a parameter; a last segment "*name" matches the rest.
func validatePath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("path must start with /")
	}
	if len(p) > 1024 {
		return errors.New("path must be at most 1024 characters")
	}
	segs := segments(p)
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":") && len(s) == 1:
			return fmt.Errorf("path %q: a parameter needs a name, like /users/:id", p)
		case strings.HasPrefix(s, "*") && len(s) == 1:
			return fmt.Errorf("path %q: a wildcard needs a name, like /files/*path", p)
		case strings.HasPrefix(s, "*") && i != len(segs)-1:
			return fmt.Errorf("path %q: a wildcard may only be the last segment", p)
		}
	}
	return nil
}

func segments(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// match reports whether path matches pattern, with the parameters it binds
// and a specificity score (static segments count most) to choose among
// several matches.
func match(pattern, path string) (params map[string]string, score int, ok bool) {
	ps, xs := segments(pattern), segments(path)
	for i, s := range ps {
		if strings.HasPrefix(s, "*") {
			if i >= len(xs) {
				return nil, 0, false // a wildcard matches one segment or more
			}
			if params == nil {
				params = map[string]string{}
			}
			params[s[1:]] = strings.Join(xs[i:], "/")
			return params, score, true
		}
		if i >= len(xs) {
			return nil, 0, false
		}
		switch {
		case strings.HasPrefix(s, ":"):
			if params == nil {
				params = map[string]string{}
			}
			params[s[1:]] = xs[i]
			score++
		case s == xs[i]:
			score += 1000
		default:
			return nil, 0, false
		}
	}
	if len(ps) != len(xs) {
		return nil, 0, false
	}
	return params, score, true
}

// pathConflict refuses a sync subscription whose path the Event Gateway's
// routing tree could not hold beside another sync subscription of the
// space to the same method and event type: at the same place, a parameter
// of another name, a parameter beside a static segment, or a wildcard
// beside anything else. Its messages are the Event Gateway's.
func pathConflict(snap *Config, space string, s Subscription) error {
	for _, o := range snap.Subscriptions {
		if o.Space != space || o.Type != Sync || o.Method != s.Method || o.EventType != s.EventType {
			continue
		}
		if err := conflict(segments(o.Path), segments(s.Path), s.Path); err != nil {
			return err
		}
	}
	return nil
}

func conflict(old, neu []string, route string) error {
	for i := 0; i < len(old) && i < len(neu); i++ {
		a, b := old[i], neu[i]
		switch {
		case strings.HasPrefix(a, "*"):
			if b != a {
				return fmt.Errorf("wildcard with different name (%q) already defined: for route: %s", a[1:], route)
			}
		case strings.HasPrefix(a, ":"):
			if b != a {
				return fmt.Errorf("parameter with different name (%q) already defined: for route: %s", a[1:], route)
			}
		case strings.HasPrefix(b, ":"):
			return fmt.Errorf("static route already defined for route: %s", route)
		case strings.HasPrefix(b, "*"):
			return fmt.Errorf("wildcard with different name (%q) already defined: for route: %s", "", route)
		case a != b:
			return nil // they part at a static segment
		}
	}
	return nil
}
