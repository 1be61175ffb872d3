package destination

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// FuzzSplitAndParse feeds arbitrary hook bodies through everything the handler and worker do
// with them: no panic, and the invariants a user relies on hold for whatever gets through.
func FuzzSplitAndParse(f *testing.F) {
	for _, name := range []string{"suprsend_identify_language.json", "suprsend_identify_channels.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `[]`, `{}`, `null`, `42`, `{"batch":[]}`, `{"batch":{}}`,
		`[{"type":"identify","userId":1,"traits":{"email":["a@b.co","x"],"phone":"+1 (555) 010-0000","language":"HI","timezone":"../x"}}]`,
		`{"type":"track","userId":"u","event":"E","properties":{"name":1},"timestamp":"2024-01-01T00:00:00Z"}`,
		`{"type":"page","anonymousId":"a","properties":{"name":"Home"}}`,
		`{"type":"group","userId":"u","groupId":7}`,
		`{"type":"alias","userId":"u","previousId":"p"}`,
		`{"type":"identify","userId":"u","context":{"traits":{"whatsapp":"+919876543210","apnsIospush":"t"}}}`,
		`[1,"x",{"type":"delete","userId":"u"}, [ ] ]`,
	} {
		f.Add([]byte(s))
	}
	replace := DefaultMapping()
	replace.ChannelPolicy = PolicyReplace

	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, signed, err := SplitBody(body)
		if err != nil {
			return
		}
		if len(msgs) > 0 && bytes.HasPrefix(bytes.TrimLeft(body, jsonSpace), []byte("[")) && !bytes.Equal(signed, msgs[0]) {
			t.Fatalf("array body: signed %q is not the first element %q", signed, msgs[0])
		}
		if !bytes.Contains(body, signed) {
			t.Fatalf("signed bytes %q do not appear in the body", signed)
		}
		for _, raw := range msgs {
			if !json.Valid(raw) {
				t.Fatalf("SplitBody returned invalid JSON %q", raw)
			}
			m, ignored := ParseMessage(raw)
			if ignored != "" {
				continue
			}
			if _, ok := EventName(m, true); ok && m.Type != TypeTrack && m.Type != TypePage && m.Type != TypeScreen {
				t.Fatalf("type %q produced an event", m.Type)
			}
			if m.Type != TypeIdentify {
				continue
			}
			for _, mapping := range []Mapping{DefaultMapping(), replace} {
				p := NewProfile(m.UserID, t0)
				ApplyIdentify(&p, m.Traits, mapping)
				if _, changed := ApplyIdentify(&p, m.Traits, mapping); changed {
					t.Fatalf("applying the same identify twice changed the profile: %s", raw)
				}
				checkProfile(t, p)
				ApplyGroup(&p, m.UserID)
				other := NewProfile("other", t0)
				ApplyIdentify(&other, m.Traits, mapping)
				MergeAlias(&p, other)
				checkProfile(t, p)
			}
		}
	})
}

// checkProfile asserts what any stored profile must satisfy: it encodes, no channel slot holds
// a duplicate, and every stored value passes the same validation that admitted it.
func checkProfile(t *testing.T, p Profile) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("profile does not encode: %v", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatalf("profile JSON does not decode: %v", err)
	}
	for _, k := range []string{"$email", "$sms", "$whatsapp", "$slack", "$androidpush", "$iospush"} {
		if !bytes.HasPrefix(fields[k], []byte("[")) {
			t.Fatalf("%s encodes as %s, want an array", k, fields[k])
		}
	}
	for _, s := range slots {
		vals := s.values(&p)
		for i, v := range vals {
			if n, reason := s.normalize(v); reason != "" || n != v {
				t.Fatalf("%s holds %q, which normalizes to %q (%s)", s.name, v, n, reason)
			}
			for _, w := range vals[:i] {
				if s.same(v, w) {
					t.Fatalf("%s holds %q twice", s.name, v)
				}
			}
		}
	}
	if p.PreferredLanguage != "" {
		if _, reason := normalizeLanguage(p.PreferredLanguage); reason != "" {
			t.Fatalf("stored language %q: %s", p.PreferredLanguage, reason)
		}
	}
	if p.Timezone != "" {
		if _, reason := normalizeTimezone(p.Timezone); reason != "" {
			t.Fatalf("stored timezone %q: %s", p.Timezone, reason)
		}
	}
}

// FuzzVerifySignature: never panics, a correct signature always verifies, and nothing but a
// hex spelling of the correct MAC does.
func FuzzVerifySignature(f *testing.F) {
	f.Add("key", []byte("The quick brown fox jumps over the lazy dog"), "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
	f.Add("", []byte(""), "")
	f.Add("s", []byte(`{"type":"track"}`), "ZZ")
	f.Fuzz(func(t *testing.T, secret string, signed []byte, header string) {
		got := VerifySignature(secret, signed, header)
		want := Sign(secret, signed)
		if got && (secret == "" || !strings.EqualFold(header, want)) {
			t.Fatalf("VerifySignature(%q, %q, %q) = true; correct MAC is %s", secret, signed, header, want)
		}
		if secret != "" && !VerifySignature(secret, signed, want) {
			t.Fatalf("correct signature %s for %q did not verify", want, signed)
		}
	})
}
