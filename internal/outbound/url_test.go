package outbound

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

const tail = "; targets on private networks are refused unless the operator allows them with SWITCHBOARD_OUTBOUND_ALLOW"

func TestCheckURL(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cases := []struct {
		raw      string
		allow    []netip.Prefix
		want     string // the full message, a prefix of it ending in "…", or "" for accepted
		isSecure bool   // use CheckSecureURL
	}{
		// literal refused addresses, in every spelling
		{raw: "http://10.0.0.5/hook", want: "url: 10.0.0.5 is a private address" + tail},
		{raw: "http://127.0.0.1:8080/", want: "url: 127.0.0.1 is a loopback address" + tail},
		{raw: "http://127.1/", want: "url: 127.1 (127.0.0.1) is a loopback address" + tail},
		{raw: "http://2130706433/", want: "url: 2130706433 (127.0.0.1) is a loopback address" + tail},
		{raw: "http://0x7f000001/", want: "url: 0x7f000001 (127.0.0.1) is a loopback address" + tail},
		{raw: "http://0177.0.0.1/", want: "url: 0177.0.0.1 (127.0.0.1) is a loopback address" + tail},
		{raw: "http://127.0.0.1./", want: "url: 127.0.0.1. (127.0.0.1) is a loopback address" + tail},
		{raw: "http://%31%32%37.0.0.1/", want: "url: is not a valid URL"}, // net/url refuses escapes in hosts
		{raw: "http://[::ffff:7f00:1]/", want: "url: ::ffff:7f00:1 (127.0.0.1) is a loopback address" + tail},
		{raw: "http://[::ffff:10.0.0.5]/", want: "url: ::ffff:10.0.0.5 (10.0.0.5) is a private address" + tail},
		{raw: "http://[::1]:9000/", want: "url: ::1 is a loopback address" + tail},
		{raw: "http://0.0.0.0/", want: "url: 0.0.0.0 is an unspecified address" + tail},
		{raw: "http://0/", want: "url: 0 (0.0.0.0) is an unspecified address" + tail},
		{raw: "http://[::]/", want: "url: :: is an unspecified address" + tail},
		{raw: "http://169.254.169.254/latest/meta-data/", want: "url: 169.254.169.254 is a link-local address (the cloud metadata service)" + tail},
		{raw: "http://[fe80::1%25eth0]/", want: "url: fe80::1%eth0 (fe80::1) is a link-local address" + tail},
		{raw: "http://[fd00::1]/", want: "url: fd00::1 is a private address" + tail},
		{raw: "http://100.64.1.1/", want: "url: 100.64.1.1 is a carrier-grade NAT address" + tail},
		{raw: "http://224.0.0.1/", want: "url: 224.0.0.1 is a multicast address" + tail},
		{raw: "http://255.255.255.255/", want: "url: 255.255.255.255 is a broadcast address" + tail},
		{raw: "http://[64:ff9b::a00:5]/", want: "url: 64:ff9b::a00:5 is a NAT64 address embedding 10.0.0.5, a private address" + tail},
		{raw: "http://localhost:8080/", want: "url: localhost is a loopback address" + tail},
		{raw: "http://LOCALHOST./", want: "url: LOCALHOST. is a loopback address" + tail},
		{raw: "http://api.localhost/", want: "url: api.localhost is a loopback address" + tail},
		// the allow-list lets exactly its addresses through
		{raw: "http://127.1/", allow: loop},
		{raw: "http://2130706433/", allow: loop},
		{raw: "http://0x7f000001/", allow: loop},
		{raw: "http://0177.0.0.1/", allow: loop},
		{raw: "http://[::ffff:7f00:1]/", allow: loop},
		{raw: "http://127.0.0.1:8080/hook", allow: loop},
		{raw: "http://localhost:8080/", allow: loop},
		{raw: "http://[::1]/", allow: loop, want: "url: ::1 is a loopback address" + tail},
		{raw: "http://0.0.0.0/", allow: loop, want: "url: 0.0.0.0 is an unspecified address" + tail},
		{raw: "http://[::]/", allow: loop, want: "url: :: is an unspecified address" + tail},
		{raw: "http://10.0.0.5/", allow: loop, want: "url: 10.0.0.5 is a private address" + tail},
		// shapes
		{raw: "https://example.com/hook"},
		{raw: "http://8.8.8.8:8080/x?y=1"},
		{raw: "https://[2606:4700:4700::1111]/"},
		{raw: "HTTPS://Example.COM/"},
		{raw: "", want: "url: must be an http:// or https:// URL"},
		{raw: "example.com/hook", want: "url: must be an http:// or https:// URL"},
		{raw: "ftp://example.com/", want: "url: must be an http:// or https:// URL"},
		{raw: "javascript:alert(1)", want: "url: must be an http:// or https:// URL"},
		{raw: "http:example.com", want: "url: must be an absolute URL with a host, like https://example.com/hook"},
		{raw: "http:///hook", want: "url: must be an absolute URL with a host, like https://example.com/hook"},
		{raw: "http://user:pw@example.com/", want: "url: must not contain a user name or password"},
		{raw: "http://user@example.com/", want: "url: must not contain a user name or password"},
		{raw: "http://example.com:0/", want: "url: port 0 is out of range (1-65535)"},
		{raw: "http://example.com:99999/", want: "url: port 99999 is out of range (1-65535)"},
		{raw: "http://exa mple.com/", want: "url: is not a valid URL"},
		{raw: "http://1.2.3.256/", want: "url: host 1.2.3.256 looks like an IPv4 address but is not a valid one"},
		{raw: "http://1.2.3.4.5/", want: "url: host 1.2.3.4.5 looks like an IPv4 address but is not a valid one"},
		{raw: "http://example.123/", want: "url: host example.123 looks like an IPv4 address but is not a valid one"},
		// https required for Segment endpoints unless the host is on the list
		{raw: "https://api.segment.io", isSecure: true},
		{raw: "https://events.eu1.segmentapis.com/", isSecure: true},
		{raw: "http://api.segment.io", isSecure: true, want: "url: must be an https:// URL; plain http:// is accepted only for addresses the operator lists in SWITCHBOARD_OUTBOUND_ALLOW"},
		{raw: "http://8.8.8.8", isSecure: true, want: "url: must be an https:// URL; plain http:// is accepted only for addresses the operator lists in SWITCHBOARD_OUTBOUND_ALLOW"},
		{raw: "http://127.0.0.1:4000", isSecure: true, allow: loop},
		{raw: "http://2130706433:4000", isSecure: true, allow: loop},
		{raw: "http://localhost:4000", isSecure: true, allow: loop},
		{raw: "http://127.0.0.1:4000", isSecure: true, want: "url: 127.0.0.1 is a loopback address" + tail},
		{raw: "https://127.0.0.1:4000", isSecure: true, allow: loop},
	}
	for _, c := range cases {
		g := New(c.allow)
		check := g.CheckURL
		if c.isSecure {
			check = g.CheckSecureURL
		}
		err := check("url", c.raw)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("check(%q, allow %v): %v", c.raw, c.allow, err)
		case c.want == "":
		case err == nil:
			t.Errorf("check(%q, allow %v) accepted; want %q", c.raw, c.allow, c.want)
		case domain.ErrorCode(err) != domain.EINVALID:
			t.Errorf("check(%q): code %q, want %q", c.raw, domain.ErrorCode(err), domain.EINVALID)
		case domain.ErrorMessage(err) != c.want:
			t.Errorf("check(%q, allow %v):\n got %q\nwant %q", c.raw, c.allow, domain.ErrorMessage(err), c.want)
		}
	}
}

func TestCheckURLNamesTheField(t *testing.T) {
	err := New(nil).CheckSecureURL("endpoint", "http://192.168.1.10/v1")
	if msg := domain.ErrorMessage(err); !strings.HasPrefix(msg, "endpoint: 192.168.1.10 is a private address") {
		t.Errorf("message %q does not name the field first", msg)
	}
	var nilGuard *Guard
	if err := nilGuard.CheckURL("base_url", "http://[::1]/"); !strings.HasPrefix(domain.ErrorMessage(err), "base_url: ::1 is a loopback") {
		t.Errorf("nil guard: %v", err)
	}
}
