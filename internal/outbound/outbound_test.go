package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
