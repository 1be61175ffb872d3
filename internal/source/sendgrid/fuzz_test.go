package sendgrid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source/sourcetest"
)

// FuzzParseBatch feeds arbitrary bodies through the whole pure pipeline (sourcetest.CheckBody).
func FuzzParseBatch(f *testing.F) {
	sourcetest.Seed(f, `[]`, `{}`, `""`, ``, `[1,null,"x",[],{}]`,
		`[{"event":"open","event":"click","sg_event_id":" ","email":" A@B ","timestamp":"1e9"}]`,
		`[{"event":"group_unsubscribe","asm_group_id":10.5e3,"unique_args":{"user_id":7},"category":[[],"x"]}]`,
		`[{"event":"click","timestamp":-62135596801,"url":"\u003c\ud800","ip":"\u2028"}]`,
		"[{\"event\":\"delivered\",\"timestamp\":253402300799.999999999,\"email\":\"\xff@x\"}]")
	settings := []domain.SourceSettings{
		{},
		{AnonymousID: domain.AnonymousEmail, UserIDKeys: []string{"id", "user_id"}},
		{AnonymousID: domain.AnonymousSkip, Events: []string{"open", "click", "group_unsubscribe"}},
	}
	f.Fuzz(func(t *testing.T, body []byte) { sourcetest.CheckBody(t, Provider, body, settings, "sg-") })
}

// fuzzKey is a fixed P-256 key, so that the seed signature made by the coordinator is valid in
// every fuzz worker and mutations of it stay interesting.
func fuzzKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	d := sha256.Sum256([]byte("switchboard sendgrid FuzzVerify key"))
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		tb.Fatal(err)
	}
	return priv
}

// FuzzVerify feeds arbitrary header values and bodies to Verify with one real signed request
// as the seed. Verify must never panic, must answer EUNAUTHORIZED when it refuses, and must
// accept only the timestamp and body that were really signed (the signature's text may vary:
// base64 and ECDSA both have more than one spelling of one signature).
func FuzzVerify(f *testing.F) {
	priv := fuzzKey(f)
	pub := publicKeyText(f, &priv.PublicKey)
	at := time.Unix(1700000000, 0)
	ts := "1700000000"
	body := []byte(`[{"email":"a@example.com","timestamp":1700000000,"event":"open","sg_event_id":"b3Blbi0x"}]`)
	sum := sha256.Sum256(append([]byte(ts), body...))
	der, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		f.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(der)
	f.Add(sig, ts, body)
	f.Add(" "+sig+"\n", " "+ts+" ", body)
	f.Add(sig, "1700000001", body)
	f.Add(sig, "170000000", append([]byte("0"), body...)) // a digit moved from the timestamp to the body
	f.Add(sig, ts, body[:len(body)-1])
	f.Add("", ts, body)
	f.Add(sig, "", body)
	f.Add("====", "x", []byte{})
	f.Add(sig[:len(sig)-4], "-9223372036854775808", body)
	f.Fuzz(func(t *testing.T, fsig, fts string, fbody []byte) {
		header := func(name string) string {
			switch name {
			case SignatureHeader:
				return fsig
			case TimestampHeader:
				return fts
			}
			return ""
		}
		err := Verify(header, fbody, pub, at)
		if err != nil {
			if domain.ErrorCode(err) != domain.EUNAUTHORIZED {
				t.Fatalf("error %v is not EUNAUTHORIZED", err)
			}
			return
		}
		if strings.TrimSpace(fts) != ts || !bytes.Equal(fbody, body) {
			t.Fatalf("accepted timestamp %q and body %q, which were never signed", fts, fbody)
		}
	})
}
