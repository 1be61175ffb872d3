package domain

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a random identifier with a readable prefix ("ten_", "src_", …): 80 random
// bits are enough to be unguessable in a URL and keep ids short.
func NewID(prefix string) string {
	return prefix + strings.ToLower(idEncoding.EncodeToString(RandomBytes(10)))
}

// NewSecret returns a random secret of 32 bytes, base32-encoded, with a prefix that tells a
// reader (and secret scanners) what it is.
func NewSecret(prefix string) string {
	return prefix + strings.ToLower(idEncoding.EncodeToString(RandomBytes(32)))
}

// RandomBytes returns n bytes from the operating system's CSPRNG.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error on supported platforms (Go ≥ 1.24 crashes instead).
	_, _ = rand.Read(b)
	return b
}

// Hint returns the last four characters of a secret, the only part of it ever shown again.
func Hint(secret string) string {
	if len(secret) <= 4 {
		return strings.Repeat("*", len(secret))
	}
	return "…" + secret[len(secret)-4:]
}

// ValidID reports whether s looks like an id this package made with prefix; handlers use it to
// answer 404 early for garbage (path traversal, SQL metacharacters) without a query.
func ValidID(prefix, s string) bool {
	if !strings.HasPrefix(s, prefix) || len(s) != len(prefix)+16 {
		return false
	}
	for _, c := range s[len(prefix):] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
