package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/auth"
)

func TestLoadKeysGeneratesOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	k1, err := auth.LoadKeys(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(k1.Generated) != 2 || len(k1.JWT) != 32 || len(k1.Encryption) != 32 {
		t.Fatalf("first load: %d files generated, key sizes %d/%d", len(k1.Generated), len(k1.JWT), len(k1.Encryption))
	}
	for _, f := range k1.Generated {
		fi, _ := os.Stat(f)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v; want 0600", f, fi.Mode().Perm())
		}
	}
	k2, err := auth.LoadKeys(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(k2.Generated) != 0 || string(k2.JWT) != string(k1.JWT) || string(k2.Encryption) != string(k1.Encryption) {
		t.Fatal("second load did not reuse the key files")
	}
	// Environment values win over files.
	k3, err := auth.LoadKeys(dir, strings.Repeat("s", 40), strings.Repeat("ab", 32))
	if err != nil || string(k3.JWT) != strings.Repeat("s", 40) || k3.Encryption[0] != 0xab {
		t.Fatalf("env override: %v", err)
	}
	if _, err := auth.LoadKeys(dir, "short", ""); err == nil {
		t.Fatal("a short JWT secret was accepted")
	}
	if _, err := auth.LoadKeys(dir, "", "not-a-key"); err == nil {
		t.Fatal("a malformed encryption key was accepted")
	}
	os.WriteFile(filepath.Join(dir, "jwt.key"), []byte("garbage"), 0o600)
	if _, err := auth.LoadKeys(dir, "", ""); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestBoxSealsAndDetectsTampering(t *testing.T) {
	box, err := auth.NewBox([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := box.Seal("write-key"), box.Seal("write-key")
	if string(a) == string(b) || strings.Contains(string(a), "write-key") {
		t.Fatal("sealing must use a fresh nonce and hide the plaintext")
	}
	if got, err := box.Open(a); err != nil || got != "write-key" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	a[len(a)-1] ^= 1
	if _, err := box.Open(a); err == nil {
		t.Fatal("a tampered value opened")
	}
	other, _ := auth.NewBox([]byte("fedcba9876543210fedcba9876543210"))
	if _, err := other.Open(b); err == nil {
		t.Fatal("a value opened under another key")
	}
}

func TestSecretHashing(t *testing.T) {
	h := auth.HashSecret("s3cret")
	if strings.Contains(h, "s3cret") || !auth.CheckSecret(h, "s3cret") || auth.CheckSecret(h, "s3cret ") || auth.CheckSecret(h, "") {
		t.Fatal("HashSecret/CheckSecret")
	}
}

func TestTokensRoundTripAndExpiry(t *testing.T) {
	if _, err := auth.NewTokens([]byte("short")); err == nil {
		t.Fatal("short signing key accepted")
	}
	tk, _ := auth.NewTokens([]byte(strings.Repeat("k", 32)))
	s, exp, err := tk.Tenant("ten_abc", 3, time.Hour)
	if err != nil || time.Until(exp) < 59*time.Minute {
		t.Fatalf("Tenant: %v %v", exp, err)
	}
	c, err := tk.Verify(s)
	if err != nil || c.Role != auth.RoleTenant || c.TenantID != "ten_abc" || c.Gen != 3 || c.Issuer != auth.Issuer {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	for _, ttl := range []time.Duration{0, time.Nanosecond, time.Second, 59 * time.Second} {
		if _, _, err := tk.Operator(ttl); err == nil || !strings.Contains(err.Error(), "ttl: must be at least 1m") {
			t.Fatalf("ttl %s: %v; want refused (it would mint an expired or nearly expired token)", ttl, err)
		}
	}
	short, _, _ := tk.Operator(time.Minute)
	other, _ := auth.NewTokens([]byte(strings.Repeat("k", 32)))
	if _, err := other.Verify(short); err != nil {
		t.Fatalf("same key, fresh token: %v", err)
	}
	if _, err := other.Verify(short + "x"); err == nil {
		t.Fatal("a token with a changed signature verified")
	}
}
