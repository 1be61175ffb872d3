package sendgrid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// The Signed Event Webhook's request headers.
const (
	SignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	TimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// MaxSignatureSkew is how far a signed request's timestamp may be from the server's clock,
// either way. SendGrid documents no window; a replay inside it stores nothing twice, because
// events are deduplicated by sg_event_id.
const MaxSignatureSkew = 10 * time.Minute

// Verify checks SendGrid's Signed Event Webhook: an ECDSA P-256 signature (base64 of ASN.1
// DER) over the timestamp header's text followed by the raw body, made with the key whose
// public half is publicKey, and a timestamp within MaxSignatureSkew of now. Errors are
// EUNAUTHORIZED and name the problem.
func Verify(header func(string) string, body []byte, publicKey string, now time.Time) error {
	key, err := ParsePublicKey(publicKey)
	if err != nil {
		return domain.Errorf(domain.EUNAUTHORIZED, "the source's public_key cannot verify signatures: %v", err)
	}
	sig, ts := strings.TrimSpace(header(SignatureHeader)), strings.TrimSpace(header(TimestampHeader))
	switch {
	case sig == "":
		return domain.Errorf(domain.EUNAUTHORIZED, "%s is missing: this source takes only requests signed by SendGrid's Signed Event Webhook", SignatureHeader)
	case ts == "":
		return domain.Errorf(domain.EUNAUTHORIZED, "%s is missing", TimestampHeader)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return domain.Errorf(domain.EUNAUTHORIZED, "%s: %q is not Unix seconds", TimestampHeader, domain.Truncate(ts, 40))
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > MaxSignatureSkew || skew < -MaxSignatureSkew {
		return domain.Errorf(domain.EUNAUTHORIZED, "%s is %s away from the server's clock; at most %s is accepted",
			TimestampHeader, skew.Abs().Round(time.Second), MaxSignatureSkew)
	}
	der, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return domain.Errorf(domain.EUNAUTHORIZED, "%s is not base64", SignatureHeader)
	}
	if !ecdsa.VerifyASN1(key, digest(ts, body), der) {
		return domain.Errorf(domain.EUNAUTHORIZED, "signature does not match the body and the source's public_key")
	}
	return nil
}

// digest is what SendGrid signs: SHA-256 of the timestamp header's text followed by the raw body.
func digest(timestamp string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write(body)
	return h.Sum(nil)
}

// Sign signs body at timestamp (Unix seconds as text) as SendGrid's Signed Event Webhook does
// and returns the value of SignatureHeader: Verify's counterpart, for tests and for tools that
// replay posts to a signed source.
func Sign(key *ecdsa.PrivateKey, timestamp string, body []byte) (string, error) {
	der, err := ecdsa.SignASN1(rand.Reader, key, digest(timestamp, body))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// PublicKeyText returns pub as SendGrid shows a verification key: base64 of its DER
// SubjectPublicKeyInfo, the form a source's public_key takes.
func PublicKeyText(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// maxKeyText bounds a public_key's text: a source is shown with it on every read.
const maxKeyText = 1024

// ParsePublicKey reads a Signed Event Webhook verification key as SendGrid shows it (base64
// of the DER SubjectPublicKeyInfo) or as PEM, and checks that it is an ECDSA P-256 key.
func ParsePublicKey(text string) (*ecdsa.PublicKey, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return nil, errors.New("no key")
	case len(text) > maxKeyText:
		return nil, fmt.Errorf("%d characters; a P-256 key is about 124 in base64, 180 as PEM", len(text))
	}
	var der []byte
	if strings.HasPrefix(text, "-----BEGIN") {
		block, rest := pem.Decode([]byte(text))
		if block == nil {
			return nil, errors.New("not a PEM block")
		}
		if len(strings.TrimSpace(string(rest))) > 0 {
			return nil, errors.New("text after the PEM block")
		}
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), "")); err != nil {
			return nil, errors.New("neither base64 nor PEM")
		}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not a public key (SubjectPublicKeyInfo)")
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key, which SendGrid's keys are")
	}
	return key, nil
}

// CheckSettings holds a SendGrid source's own rules: a signature-only source needs its public
// key, a key must be one SendGrid could have made, and SparkPost's initial opens do not apply.
func CheckSettings(auth string, s domain.SourceSettings) error {
	if s.PublicKey == "" {
		if auth == domain.AuthSignature {
			return domain.Errorf(domain.EINVALID, "public_key: required with auth signature: the verification key from SendGrid's Signed Event Webhook settings")
		}
	} else if _, err := ParsePublicKey(s.PublicKey); err != nil {
		return domain.Errorf(domain.EINVALID, "public_key: %v", err)
	}
	if s.ForwardInitialOpens {
		return domain.Errorf(domain.EINVALID, "forward_initial_opens: SparkPost only; SendGrid sends no initial opens")
	}
	return nil
}
