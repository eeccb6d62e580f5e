package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	g := NewGuard(nil)
	for _, a := range []string{"127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254",
		"100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1"} {
		if err := g.Check(netip.MustParseAddr(a)); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want refused, got %v", a, err)
		}
	}
	for _, a := range []string{"1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "93.184.216.34"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s: want allowed, got %v", a, err)
		}
	}
	allow, err := ParseAllow([]string{"127.0.0.1", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	g = NewGuard(allow)
	for _, a := range []string{"127.0.0.1", "10.9.9.9", "::ffff:127.0.0.1"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s: allow-listed, got %v", a, err)
		}
	}
	if err := g.Check(netip.MustParseAddr("127.0.0.2")); err == nil {
		t.Error("127.0.0.2 is not in the allow-list")
	}
	if _, err := ParseAllow([]string{"not-a-cidr"}); err == nil {
		t.Error("a bad --allow-outbound value must fail")
	}
}

// TestForms: every special form of an address is refused, including the
// ones that slipped past prefix matching (a zone id makes Prefix.Contains
// false; ::a.b.c.d and 6to4 carry an IPv4 address), and public addresses in
// the same shapes are not.
func TestForms(t *testing.T) {
	g := NewGuard(nil)
	for _, tc := range []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1", true},
		{"::1", true},
		{"::1%lo", true},                    // zone id: Prefix.Contains is false for zoned addresses
		{"fe80::1%eth0", true},              // link-local with its zone
		{"2606:4700:4700::1111%eth0", true}, // any zone at all
		{"::127.0.0.1", true},               // IPv4-compatible loopback
		{"::169.254.169.254", true},         // IPv4-compatible metadata
		{"::10.0.0.1", true},                // IPv4-compatible private
		{"::ffff:127.0.0.1", true},          // IPv4-mapped
		{"::ffff:10.1.2.3", true},           // IPv4-mapped private
		{"2002:7f00:1::", true},             // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::1", true},         // 6to4 of 169.254.169.254
		{"2002:c0a8:101::", true},           // 6to4 of 192.168.1.1
		{"64:ff9b::7f00:1", true},           // NAT64 of 127.0.0.1
		{"64:ff9b:1::1", true},              // local-use NAT64
		{"2001::1", true},                   // Teredo
		{"2001:2::1", true},                 // benchmarking
		{"2001:db8::1", true},               // documentation
		{"3fff::1", true},                   // documentation
		{"100::1", true},                    // discard-only
		{"fec0::1", true},                   // site-local
		{"fd00:ec2::254", true},             // unique local (AWS metadata)
		{"ff02::1", true},                   // multicast
		{"::", true},                        // unspecified
		{"0.0.0.0", true},
		{"192.0.2.1", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"192.88.99.1", true},
		{"255.255.255.255", true},
		{"1.1.1.1", false},
		{"::1.1.1.1", false}, // IPv4-compatible of a public address
		{"::ffff:8.8.8.8", false},
		{"2002:101:101::1", false}, // 6to4 of 1.1.1.1
		{"2606:4700:4700::1111", false},
	} {
		err := g.Check(netip.MustParseAddr(tc.addr))
		if tc.refused && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want refused, got %v", tc.addr, err)
		}
		if !tc.refused && err != nil {
			t.Errorf("%s: want allowed, got %v", tc.addr, err)
		}
	}
	// The allow-list applies to the carried IPv4 address.
	g = NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	for _, a := range []string{"::ffff:127.0.0.1", "::127.0.0.1", "2002:7f00:1::"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s carries an allowed address: %v", a, err)
		}
	}
	if err := g.Check(netip.MustParseAddr("::1%lo")); !errors.Is(err, ErrRefused) {
		t.Errorf("a zoned address is refused even when its range might be allowed: %v", err)
	}
	if _, err := ParseAllow([]string{"fe80::1%eth0"}); err == nil {
		t.Error("an allow-list entry with a zone must be refused")
	}
}

// TestURLForms: the same forms written in URLs are refused by CheckURL, and
// the guarded client refuses to dial them (the check on the dialled
// address), a redirect to them included.
func TestURLForms(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := NewGuard(nil)
	client := g.Client(5 * time.Second)
	urls := []string{
		"http://[::1%25lo]:" + port + "/",
		"http://[fe80::1%25lo]:" + port + "/",
		"http://[::127.0.0.1]:" + port + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://[2002:7f00:1::]:" + port + "/",
		"http://[64:ff9b::7f00:1]:" + port + "/",
		"http://localhost:" + port + "/",
	}
	for _, u := range urls {
		if err := g.CheckURL(context.Background(), u); !errors.Is(err, ErrRefused) {
			t.Errorf("CheckURL(%s): want refused, got %v", u, err)
		}
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("the guarded client reached %s", u)
		} else if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want ErrRefused from the dial check, got %v", u, err)
		}
	}
	// A redirect to each form, from a server the guard allows.
	allowed := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	for _, u := range urls[:6] {
		if strings.Contains(u, "127.0.0.1]") || strings.Contains(u, "2002:") {
			continue // these carry the allowed 127.0.0.1
		}
		redir := httptest.NewServer(http.RedirectHandler(u, http.StatusFound))
		resp, err := allowed.Client(5 * time.Second).Get(redir.URL)
		redir.Close()
		if err == nil {
			resp.Body.Close()
			t.Errorf("redirect to %s followed", u)
		} else if !errors.Is(err, ErrRefused) {
			t.Errorf("redirect to %s: want ErrRefused, got %v", u, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	g := NewGuard(nil)
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1:9/x", "http://localhost/x", "ftp://example.com/", "http:///x", "http://u:p@1.1.1.1/", "http://[::1]/"} {
		if err := g.CheckURL(ctx, u); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want refused, got %v", u, err)
		}
	}
	if err := g.CheckURL(ctx, "https://1.1.1.1/hook"); err != nil {
		t.Errorf("public address refused: %v", err)
	}
}

// TestClientChecksDialledAddress: a server on loopback cannot be reached
// through the guarded client, whatever name points there, unless allowed.
func TestClientChecksDialledAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		resp, err := NewGuard(nil).Client(5 * time.Second).Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: the guarded client reached loopback", u)
		}
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("%s: want ErrRefused, got %v", u, err)
		}
	}
	// A redirect from an allowed server to a refused address is refused too.
	allowed := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	redir := httptest.NewServer(http.RedirectHandler("http://[::1]:"+port+"/", http.StatusFound))
	defer redir.Close()
	if resp, err := allowed.Client(5 * time.Second).Get(redir.URL); err == nil {
		resp.Body.Close()
		t.Fatal("redirect to ::1 followed")
	} else if !errors.Is(err, ErrRefused) {
		t.Fatalf("redirect: want ErrRefused, got %v", err)
	}
	resp, err := allowed.Client(5 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatalf("allow-listed loopback: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
