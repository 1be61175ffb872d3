package sendgrid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
)

// now is the server's clock in these tests: Verify takes it as an argument.
var now = time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)

var signedBody = []byte(`[{"email":"a@example.com","timestamp":1700000000,"event":"processed","sg_event_id":"cHJvY2Vzc2Vk","sg_message_id":"m-1"}]` + "\r\n")

// newKey returns a fresh P-256 key and its public half as SendGrid shows it: base64 (standard
// alphabet) of the DER SubjectPublicKeyInfo.
func newKey(tb testing.TB) (*ecdsa.PrivateKey, string) {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return priv, publicKeyText(tb, &priv.PublicKey)
}

// publicKeyText is a public key in SendGrid's form (base64 of the DER SubjectPublicKeyInfo).
func publicKeyText(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// publicKeyPEM is a public key as a PEM "PUBLIC KEY" block.
func publicKeyPEM(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign returns SendGrid's signature header value for a request: base64 of the ASN.1 DER
// ECDSA signature of sha256(timestamp + body).
func sign(tb testing.TB, priv *ecdsa.PrivateKey, ts string, body []byte) string {
	tb.Helper()
	sum := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// headers returns the header lookup of a request carrying the given signature and timestamp
// ("" = header absent), canonicalized as net/http does.
func headers(sig, ts string) func(string) string {
	h := http.Header{}
	if sig != "" {
		h.Set(SignatureHeader, sig)
	}
	if ts != "" {
		h.Set(TimestampHeader, ts)
	}
	return h.Get
}

func unixText(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// wantUnauthorized fails unless err is an EUNAUTHORIZED *domain.Error whose message contains
// each of words.
func wantUnauthorized(tb testing.TB, err error, words ...string) {
	tb.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		tb.Fatalf("err = %v (%T), want a *domain.Error", err, err)
	}
	if de.Code != domain.EUNAUTHORIZED {
		tb.Errorf("code = %q, want %q", de.Code, domain.EUNAUTHORIZED)
	}
	for _, w := range words {
		if !strings.Contains(de.Message, w) {
			tb.Errorf("message %q does not name %q", de.Message, w)
		}
	}
}

func TestVerifyValid(t *testing.T) {
	priv, pub := newKey(t)
	ts := unixText(now)
	sig := sign(t, priv, ts, signedBody)
	if err := Verify(headers(sig, ts), signedBody, pub, now); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	if err := Verify(headers(sig, ts), signedBody, publicKeyPEM(t, &priv.PublicKey), now); err != nil {
		t.Errorf("valid request refused with the PEM key: %v", err)
	}
	// SendGrid's settings page may be copied with a line break or spaces around the key.
	if err := Verify(headers(sig, ts), signedBody, " "+pub[:40]+"\n"+pub[40:]+"\n", now); err != nil {
		t.Errorf("valid request refused with a wrapped key: %v", err)
	}
	// Through the Provider, the key comes from the source's settings.
	v, ok := Provider.(source.Verifier)
	if !ok {
		t.Fatal("Provider is not a source.Verifier: the hook would take unsigned requests")
	}
	if err := v.Verify(headers(sig, ts), signedBody, domain.SourceSettings{PublicKey: pub}, now); err != nil {
		t.Errorf("Provider.Verify refused a valid request: %v", err)
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	priv, pub := newKey(t)
	ts := unixText(now)
	sig := sign(t, priv, ts, signedBody)

	body := append([]byte(nil), signedBody...)
	body[strings.Index(string(body), "processed")] = 'P'
	wantUnauthorized(t, Verify(headers(sig, ts), body, pub, now), "signature does not match")

	wantUnauthorized(t, Verify(headers(sig, ts), signedBody[:len(signedBody)-1], pub, now), "signature does not match")

	otherTS := unixText(now.Add(time.Second))
	wantUnauthorized(t, Verify(headers(sig, otherTS), signedBody, pub, now), "signature does not match")

	// The timestamp is signed as text: the same instant written otherwise is another message.
	wantUnauthorized(t, Verify(headers(sig, "0"+ts), signedBody, pub, now), "signature does not match")

	other, _ := newKey(t)
	wantUnauthorized(t, Verify(headers(sign(t, other, ts, signedBody), ts), signedBody, pub, now), "signature does not match")

	// A signature over the body alone, without the timestamp, is not SendGrid's.
	sum := sha256.Sum256(signedBody)
	der, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, Verify(headers(base64.StdEncoding.EncodeToString(der), ts), signedBody, pub, now), "signature does not match")
}

func TestVerifyHeaders(t *testing.T) {
	priv, pub := newKey(t)
	ts := unixText(now)
	sig := sign(t, priv, ts, signedBody)
	tests := []struct {
		name    string
		sig, ts string
		want    string // the message names it
	}{
		{"no signature header", "", ts, SignatureHeader},
		{"blank signature header", "  ", ts, SignatureHeader},
		{"no timestamp header", sig, "", TimestampHeader},
		{"blank timestamp header", sig, " \t", TimestampHeader},
		{"non-numeric timestamp", sig, "yesterday", TimestampHeader},
		{"RFC 3339 timestamp", sig, now.Format(time.RFC3339), TimestampHeader},
		{"fractional timestamp", sig, ts + ".5", TimestampHeader},
		{"non-base64 signature", "not*base64!", ts, SignatureHeader},
		{"base64url signature", strings.NewReplacer("+", "-", "/", "_").Replace(sig) + "-_", ts, SignatureHeader},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage")), ts, "signature"},
		{"empty signature bytes", "====", ts, SignatureHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUnauthorized(t, Verify(headers(tt.sig, tt.ts), signedBody, pub, now), tt.want)
		})
	}
}

func TestVerifyTimestampWindow(t *testing.T) {
	priv, pub := newKey(t)
	tests := []struct {
		name   string
		offset time.Duration // the signed timestamp minus the server's clock
		wantOK bool
	}{
		{"now", 0, true},
		{"9 minutes old", -9 * time.Minute, true},
		{"9 minutes ahead", 9 * time.Minute, true},
		{"at the limit", -MaxSignatureSkew, true},
		{"11 minutes old", -11 * time.Minute, false},
		{"11 minutes ahead", 11 * time.Minute, false},
		{"a day old", -24 * time.Hour, false},
		{"epoch", -time.Duration(now.Unix()) * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := unixText(now.Add(tt.offset))
			err := Verify(headers(sign(t, priv, ts, signedBody), ts), signedBody, pub, now)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantUnauthorized(t, err, TimestampHeader, "at most 10m0s")
		})
	}
	// Timestamps beyond what time.Duration holds are refused, not wrapped around.
	for _, ts := range []string{"9223372036854775807", "-9223372036854775808", "99999999999"} {
		wantUnauthorized(t, Verify(headers(sign(t, priv, ts, signedBody), ts), signedBody, pub, now), TimestampHeader)
	}
}

func TestVerifyRefusesUnusableKeys(t *testing.T) {
	priv, _ := newKey(t)
	ts := unixText(now)
	sig := sign(t, priv, ts, signedBody)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"none": "", "garbage": "not a key", "P-384": publicKeyText(t, &p384.PublicKey)} {
		t.Run(name, func(t *testing.T) {
			wantUnauthorized(t, Verify(headers(sig, ts), signedBody, key, now), "public_key")
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	priv, pub := newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		text    string
		wantErr string // "" = parses to priv's public key
	}{
		{"SendGrid's base64", pub, ""},
		{"PEM", publicKeyPEM(t, &priv.PublicKey), ""},
		{"surrounding space", "\n  " + pub + " \n", ""},
		{"wrapped base64", pub[:30] + "\n" + pub[30:60] + " " + pub[60:], ""},
		{"empty", "", "no key"},
		{"blank", " \n ", "no key"},
		{"not base64", "not a key!", "neither base64 nor PEM"},
		{"base64 of garbage", base64.StdEncoding.EncodeToString([]byte("garbage")), "not a public key"},
		{"a private key", base64.StdEncoding.EncodeToString(privDER), "not a public key"},
		{"broken PEM", "-----BEGIN PUBLIC KEY-----\nAAAA", "not a PEM block"},
		{"P-384", publicKeyText(t, &p384.PublicKey), "not an ECDSA P-256 key"},
		{"P-384 PEM", publicKeyPEM(t, &p384.PublicKey), "not an ECDSA P-256 key"},
		{"RSA", publicKeyText(t, &rsaKey.PublicKey), "not an ECDSA P-256 key"},
		{"RSA PEM", publicKeyPEM(t, &rsaKey.PublicKey), "not an ECDSA P-256 key"},
		{"PEM with text after it", publicKeyPEM(t, &priv.PublicKey) + strings.Repeat("x", 500), "text after the PEM block"},
		{"huge", pub + strings.Repeat(" ", 1000) + pub, "1248 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParsePublicKey(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || key != nil {
					t.Fatalf("key %v, err %v; want an error containing %q", key, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !key.Equal(&priv.PublicKey) {
				t.Errorf("parsed another key")
			}
		})
	}
}

func TestCheckSettings(t *testing.T) {
	_, pub := newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		auth    string
		s       domain.SourceSettings
		wantErr []string // words of the EINVALID message; nil = ok
	}{
		{"signature with a key", domain.AuthSignature, domain.SourceSettings{PublicKey: pub}, nil},
		{"signature without a key", domain.AuthSignature, domain.SourceSettings{}, []string{"public_key", "required"}},
		{"garbage key", domain.AuthSignature, domain.SourceSettings{PublicKey: "hunter2"}, []string{"public_key"}},
		{"P-384 key", domain.AuthSignature, domain.SourceSettings{PublicKey: publicKeyText(t, &p384.PublicKey)}, []string{"public_key", "P-256"}},
		{"basic with a key", domain.AuthBasic, domain.SourceSettings{PublicKey: pub}, nil},
		{"basic without a key", domain.AuthBasic, domain.SourceSettings{}, nil},
		{"basic with a garbage key", domain.AuthBasic, domain.SourceSettings{PublicKey: "hunter2"}, []string{"public_key"}},
		{"oauth2 without a key", domain.AuthOAuth2, domain.SourceSettings{}, nil},
		{"forward_initial_opens", domain.AuthBasic, domain.SourceSettings{ForwardInitialOpens: true}, []string{"forward_initial_opens"}},
		{"forward_initial_opens with a key", domain.AuthSignature, domain.SourceSettings{PublicKey: pub, ForwardInitialOpens: true}, []string{"forward_initial_opens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSettings(tt.auth, tt.s)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.EINVALID {
				t.Fatalf("err = %v, want an EINVALID *domain.Error", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(de.Message, w) {
					t.Errorf("message %q does not name %q", de.Message, w)
				}
			}
		})
	}
}

// TestSignIsVerifysCounterpart: what Sign makes with a key, Verify accepts with PublicKeyText
// of it, and only for the body and timestamp signed.
func TestSignIsVerifysCounterpart(t *testing.T) {
	priv, _ := newKey(t)
	pub, err := PublicKeyText(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if pub != publicKeyText(t, &priv.PublicKey) {
		t.Fatalf("PublicKeyText = %q, not SendGrid's form", pub)
	}
	now := time.Unix(1700000000, 0)
	ts := unixText(now)
	sig, err := Sign(priv, ts, signedBody)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(headers(sig, ts), signedBody, pub, now); err != nil {
		t.Fatalf("Verify(Sign(...)) = %v", err)
	}
	wantUnauthorized(t, Verify(headers(sig, ts), append([]byte(" "), signedBody...), pub, now), "signature does not match")
}
