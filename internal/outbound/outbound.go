// Package outbound guards the HTTP requests nimbus makes on a user's behalf
// (async callbacks, event deliveries to outside endpoints) against
// server-side request forgery: an address in a loopback, private,
// link-local, shared, multicast or otherwise special range is refused unless
// an allow-list names it. The check runs on every address a name resolves
// to, and again on the address actually dialled, so a name that resolves
// differently the second time (DNS rebinding) gains nothing.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrRefused means an address is not one nimbus may call.
var ErrRefused = errors.New("outbound address refused")

// denied are the ranges refused unless allowed. The usual cloud metadata
// addresses (169.254.169.254, fd00:ec2::254) fall in them.
var denied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),         // "this" network
	netip.MustParsePrefix("10.0.0.0/8"),        // private
	netip.MustParsePrefix("100.64.0.0/10"),     // shared (carrier-grade NAT)
	netip.MustParsePrefix("127.0.0.0/8"),       // loopback
	netip.MustParsePrefix("169.254.0.0/16"),    // link-local, metadata
	netip.MustParsePrefix("172.16.0.0/12"),     // private
	netip.MustParsePrefix("192.0.0.0/24"),      // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),      // documentation
	netip.MustParsePrefix("192.88.99.0/24"),    // 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),    // private
	netip.MustParsePrefix("198.18.0.0/15"),     // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),   // documentation
	netip.MustParsePrefix("203.0.113.0/24"),    // documentation
	netip.MustParsePrefix("224.0.0.0/4"),       // multicast
	netip.MustParsePrefix("240.0.0.0/4"),       // reserved, broadcast
	netip.MustParsePrefix("::/96"),             // unspecified, loopback, IPv4-compatible (embedded IPv4 checked too)
	netip.MustParsePrefix("::ffff:0.0.0.0/96"), // IPv4-mapped (embedded IPv4 checked too)
	netip.MustParsePrefix("64:ff9b::/96"),      // NAT64, may reach any IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),    // local-use NAT64
	netip.MustParsePrefix("100::/64"),          // discard-only
	netip.MustParsePrefix("2001::/23"),         // IETF protocol assignments: Teredo, benchmarking, ORCHID
	netip.MustParsePrefix("2001:db8::/32"),     // documentation
	netip.MustParsePrefix("3fff::/20"),         // documentation
	netip.MustParsePrefix("5f00::/16"),         // segment routing
	netip.MustParsePrefix("fc00::/7"),          // unique local, metadata
	netip.MustParsePrefix("fe80::/10"),         // link-local
	netip.MustParsePrefix("fec0::/10"),         // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),          // multicast
}

// sixToFour is 6to4: 2002:AABB:CCDD::/48 reaches the IPv4 address
// AA.BB.CC.DD, so it is checked as that address.
var sixToFour = netip.MustParsePrefix("2002::/16")

// Guard decides which addresses may be called.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a guard that lets through, besides public addresses, the
// ranges in allow.
func NewGuard(allow []netip.Prefix) *Guard { return &Guard{allow: allow} }

// ParseAllow parses --allow-outbound values: CIDRs or single addresses.
func ParseAllow(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("--allow-outbound %q: not a CIDR (like 10.1.0.0/16) or an address without a zone", v)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// embedded is the IPv4 address an IPv6 address carries and reaches, if it
// is of a form that does: IPv4-mapped, IPv4-compatible (::a.b.c.d) or 6to4.
func embedded(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case a.Is4In6():
		return a.Unmap(), true
	case b == [16]byte{} || a == netip.IPv6Loopback():
		return netip.Addr{}, false
	case netip.MustParsePrefix("::/96").Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Check refuses an address in a denied range that is not allowed. An
// address with a zone (fe80::1%eth0, [::1%lo]) is always refused: a zone
// only scopes link-local addresses, and prefixes never match a zoned
// address, so it must not reach the range checks. An IPv6 form that
// carries an IPv4 address is checked as that address too.
func (g *Guard) Check(a netip.Addr) error {
	if a.Zone() != "" {
		return fmt.Errorf("%w: %s has a zone (%%%s); nimbus calls no link-scoped address", ErrRefused, a, a.Zone())
	}
	if v4, ok := embedded(a); ok {
		return g.check(v4, a)
	}
	return g.check(a, a)
}

func (g *Guard) check(f, orig netip.Addr) error {
	for _, p := range g.allow {
		if p.Contains(f) {
			return nil
		}
	}
	for _, p := range denied {
		if p.Contains(f) {
			what := f.String()
			if f != orig {
				what = orig.String() + " (carrying " + f.String() + ")"
			}
			return fmt.Errorf("%w: %s is in %s, which nimbus does not call unless allowed (--allow-outbound %s)", ErrRefused, what, p, netip.PrefixFrom(f, f.BitLen()))
		}
	}
	return nil
}

// CheckURL validates a URL nimbus is asked to call later: http or https, a
// host, and every address the host resolves to allowed.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: %q is not an http or https URL with a host (and no user info)", ErrRefused, raw)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return g.Check(a)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: cannot resolve %s: %v", ErrRefused, host, err)
	}
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return err
		}
	}
	return nil
}

// Client returns an HTTP client whose every connection is to an allowed
// address: the dialer checks the address it is about to connect to. It
// ignores proxy settings from the environment (a proxy would dial for it)
// and follows at most 5 redirects, each dialled through the same check.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse dialled address %q", ErrRefused, address)
		}
		return g.Check(ap.Addr())
	}}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{Transport: t, Timeout: timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		return nil
	}}
}
