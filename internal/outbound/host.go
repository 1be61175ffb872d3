package outbound

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// hostKind is what a URL or dial host denotes before any DNS lookup.
type hostKind int

const (
	hostName      hostKind = iota // a DNS name: decided after resolution
	hostIP                        // a literal address, in any spelling
	hostLocalhost                 // "localhost" or a name under .localhost: loopback without DNS
)

var errBadIPv4 = errors.New("looks like an IPv4 address but is not a valid one")

// parseHost says what host (without brackets or port) denotes. Literal addresses are read
// the way dialers, curl and browsers read them, not only the way net/netip does: "127.1",
// "2130706433", "0x7f000001" and "0177.0.0.1" are all 127.0.0.1 (inet_aton / WHATWG URL
// rules), so a check on the canonical form cannot be dodged by spelling it differently.
func parseHost(host string) (netip.Addr, hostKind, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, hostIP, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return netip.Addr{}, hostLocalhost, nil
	}
	if !endsInNumber(host) {
		return netip.Addr{}, hostName, nil
	}
	a, ok := parseLegacyIPv4(host)
	if !ok {
		return netip.Addr{}, hostIP, errBadIPv4
	}
	return a, hostIP, nil
}

// splitDots splits host on dots, dropping one trailing empty part ("127.0.0.1.").
func splitDots(host string) []string {
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// endsInNumber is the WHATWG URL test for "this host is meant as an IPv4 address": its last
// label is all decimal digits, or 0x followed by hex digits.
func endsInNumber(host string) bool {
	parts := splitDots(host)
	last := parts[len(parts)-1]
	if last == "" {
		return false
	}
	if isDigits(last, 10) {
		return true
	}
	return len(last) >= 2 && (last[:2] == "0x" || last[:2] == "0X") && isDigits(last[2:], 16)
}

func isDigits(s string, base int) bool {
	for _, c := range s {
		switch {
		case c >= '0' && c <= '7':
		case c >= '8' && c <= '9' && base >= 10:
		case (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') && base == 16:
		default:
			return false
		}
	}
	return true
}

// parseLegacyIPv4 implements inet_aton as the WHATWG URL standard specifies it: one to four
// parts, each decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes.
func parseLegacyIPv4(host string) (netip.Addr, bool) {
	parts := splitDots(host)
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := parseIPv4Number(p)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true // "0x" is 0 in the WHATWG parser
		}
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if !isDigits(s, base) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
}
