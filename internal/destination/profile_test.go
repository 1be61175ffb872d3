package destination

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 20, 15, 30, 0, 0, time.UTC)

// identifyFixture parses a testdata identify call and applies it to a new profile.
func identifyFixture(t *testing.T, file string, m Mapping) (Profile, []Warning) {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _, err := SplitBody(raw)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("SplitBody: %d messages, %v", len(msgs), err)
	}
	msg, ignored := ParseMessage(msgs[0])
	if ignored != "" {
		t.Fatalf("ignored: %s", ignored)
	}
	p := NewProfile(msg.UserID, t0)
	warnings, changed := ApplyIdentify(&p, msg.Traits, m)
	if !changed {
		t.Error("changed = false for a first identify with traits")
	}
	return p, warnings
}

// assertJSON compares the API encoding of v with want, ignoring formatting and key order.
func assertJSON(t *testing.T, v any, want string) {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON mismatch\n got: %s\nwant: %s", got, want)
	}
}

// SuprSend's guide: "hi will be set as the preferred_language", all traits become properties,
// email → $email, phone → $sms.
func TestSuprSendDocumentedExamples(t *testing.T) {
	t.Run("preference mapping", func(t *testing.T) {
		p, warnings := identifyFixture(t, "suprsend_identify_language.json", DefaultMapping())
		if len(warnings) != 0 {
			t.Errorf("warnings = %+v", warnings)
		}
		assertJSON(t, p, `{
			"distinct_id": "97980cfea0067",
			"properties": {"name": "Peter Gibbons", "email": "peter@example.com", "language": "hi", "plan": "premium", "logins": 5},
			"$email": ["peter@example.com"], "$sms": [], "$whatsapp": [], "$slack": [], "$androidpush": [], "$iospush": [],
			"$preferred_language": "hi",
			"created_at": "2024-03-20T15:30:00Z", "updated_at": "2024-03-20T15:30:00Z"
		}`)
	})
	t.Run("channel mapping with slack_email mapped as in the guide", func(t *testing.T) {
		m := DefaultMapping()
		m.ChannelMap[SlotSlackEmail] = "slack_email"
		p, warnings := identifyFixture(t, "suprsend_identify_channels.json", m)
		if len(warnings) != 0 {
			t.Errorf("warnings = %+v", warnings)
		}
		assertJSON(t, p, `{
			"distinct_id": "97980cfea0067",
			"properties": {"name": "Peter Gibbons", "email": "peter@example.com", "phone": "+15555555555",
				"slack_email": "peter@abccompany.com", "language": "hi", "plan": "premium", "logins": 5},
			"$email": ["peter@example.com"], "$sms": ["+15555555555"], "$whatsapp": [],
			"$slack": [{"email": "peter@abccompany.com"}], "$androidpush": [], "$iospush": [],
			"$preferred_language": "hi",
			"created_at": "2024-03-20T15:30:00Z", "updated_at": "2024-03-20T15:30:00Z"
		}`)
	})
	t.Run("default mapping does not read slack_email", func(t *testing.T) {
		p, _ := identifyFixture(t, "suprsend_identify_channels.json", DefaultMapping())
		if len(p.Slack) != 0 {
			t.Errorf("$slack = %+v, want empty: the default trait key is slackEmail", p.Slack)
		}
	})
}

func TestApplyIdentifyEveryDefaultSlot(t *testing.T) {
	p := NewProfile("u", t0)
	warnings, changed := ApplyIdentify(&p, map[string]any{
		"email":             "a@example.com",
		"phone":             "+1 (555) 010-0000",
		"whatsapp":          "+91 98765 43210",
		"slackEmail":        "a@corp.example.com",
		"slackUserID":       "U024BE7LH",
		"fcmAndroidpush":    "fcm-token-1",
		"xiaomiAndroidpush": "mi-token-1",
		"apnsIospush":       "apns-token-1",
	}, DefaultMapping())
	if len(warnings) != 0 || !changed {
		t.Fatalf("warnings = %+v, changed = %v", warnings, changed)
	}
	assertJSON(t, map[string]any{
		"$email": p.Email, "$sms": p.SMS, "$whatsapp": p.WhatsApp, "$slack": p.Slack,
		"$androidpush": p.AndroidPush, "$iospush": p.IOSPush,
	}, `{
		"$email": ["a@example.com"],
		"$sms": ["+15550100000"],
		"$whatsapp": ["+919876543210"],
		"$slack": [{"email": "a@corp.example.com"}, {"user_id": "U024BE7LH"}],
		"$androidpush": [{"token": "fcm-token-1", "provider": "fcm"}, {"token": "mi-token-1", "provider": "xiaomi"}],
		"$iospush": [{"token": "apns-token-1", "provider": "apns"}]
	}`)
}

func TestApplyIdentify(t *testing.T) {
	replace := DefaultMapping()
	replace.ChannelPolicy = PolicyReplace
	custom := Mapping{
		ChannelMap:    map[string]string{SlotEmail: "work_email", SlotSMS: "mobile"},
		PreferenceMap: map[string]string{PrefLanguage: "locale"},
	}

	type step struct {
		traits      map[string]any
		wantChanged bool
		wantWarn    []string // "field: reason substring"
	}
	tests := []struct {
		name    string
		mapping Mapping
		steps   []step
		check   func(t *testing.T, p Profile)
	}{
		{
			name:    "changed email is appended, both kept",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"email": "old@example.com"}, wantChanged: true},
				{traits: map[string]any{"email": "new@example.com"}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) { wantList(t, "$email", p.Email, "old@example.com", "new@example.com") },
		},
		{
			name:    "replace policy replaces",
			mapping: replace,
			steps: []step{
				{traits: map[string]any{"email": "old@example.com"}, wantChanged: true},
				{traits: map[string]any{"email": "new@example.com"}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) { wantList(t, "$email", p.Email, "new@example.com") },
		},
		{
			name:    "same identify twice changes nothing the second time",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"email": "a@example.com", "phone": "+15555550100", "language": "hi"}, wantChanged: true},
				{traits: map[string]any{"email": "a@example.com", "phone": "+15555550100", "language": "hi"}, wantChanged: false},
				// Differently written, same values: only properties change, no channel is added.
				{traits: map[string]any{"email": "a@EXAMPLE.com", "phone": "+1 555 555 0100", "language": "HI"}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) {
				wantList(t, "$email", p.Email, "a@example.com")
				wantList(t, "$sms", p.SMS, "+15555550100")
			},
		},
		{
			name:    "duplicate differing only in case is not added; domain stored lower-case",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"email": []any{"Peter@Example.COM", "peter@example.com"}}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) { wantList(t, "$email", p.Email, "Peter@example.com") },
		},
		{
			name:    "array with one bad value stores the good ones and reports the bad",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"email": []any{"a@example.com", "not-an-email", 7, "b@example.com"}}, wantChanged: true,
					wantWarn: []string{"email: not an email address", "email: want a string"}},
			},
			check: func(t *testing.T, p Profile) { wantList(t, "$email", p.Email, "a@example.com", "b@example.com") },
		},
		{
			name:    "bad emails",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"email": []any{"Peter <p@example.com>", "p@localhost", "p@@example.com", "p@example..com", " "}},
					wantChanged: true, wantWarn: []string{"email: not an email", "email: not a domain name with a dot", "email: not an email", "email: not an email"}},
			},
			check: func(t *testing.T, p Profile) { wantList(t, "$email", p.Email) },
		},
		{
			name:    "language hindi is reported and not stored",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"language": "hindi"}, wantChanged: true, wantWarn: []string{"language: not an ISO 639-1 language code"}},
			},
			check: func(t *testing.T, p Profile) {
				if p.PreferredLanguage != "" {
					t.Errorf("$preferred_language = %q, want unset", p.PreferredLanguage)
				}
				if p.Properties["language"] != "hindi" {
					t.Errorf("properties.language = %v, want the trait kept as sent", p.Properties["language"])
				}
			},
		},
		{
			name:    "language is stored lower-case; en-US is not a two-letter code",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"language": "EN"}, wantChanged: true},
				{traits: map[string]any{"language": "en-US"}, wantChanged: true, wantWarn: []string{"language: not an ISO 639-1"}},
			},
			check: func(t *testing.T, p Profile) {
				if p.PreferredLanguage != "en" {
					t.Errorf("$preferred_language = %q, want en", p.PreferredLanguage)
				}
			},
		},
		{
			name:    "valid timezone stored; bad ones reported",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"timezone": "Asia/Kolkata"}, wantChanged: true},
				// Each step changes properties.timezone (all traits are kept), never $timezone.
				{traits: map[string]any{"timezone": "Mars/Olympus_Mons"}, wantChanged: true, wantWarn: []string{"timezone: not an IANA time zone"}},
				{traits: map[string]any{"timezone": "Local"}, wantChanged: true, wantWarn: []string{"timezone: not an IANA"}},
				{traits: map[string]any{"timezone": "../../../etc/passwd"}, wantChanged: true, wantWarn: []string{"timezone: not an IANA"}},
				{traits: map[string]any{"timezone": "/usr/share/zoneinfo/UTC"}, wantChanged: true, wantWarn: []string{"timezone: not an IANA"}},
				{traits: map[string]any{"timezone": "America"}, wantChanged: true, wantWarn: []string{"timezone: not an IANA"}},
				{traits: map[string]any{"timezone": 5.5}, wantChanged: true, wantWarn: []string{"timezone: want a string"}},
			},
			check: func(t *testing.T, p Profile) {
				if p.Timezone != "Asia/Kolkata" {
					t.Errorf("$timezone = %q, want Asia/Kolkata", p.Timezone)
				}
			},
		},
		{
			name:    "phone without country code is rejected, not guessed",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"phone": "(555) 010-0000", "whatsapp": "+1 55"}, wantChanged: true,
					wantWarn: []string{"phone: needs a leading + and country code", "whatsapp: too short"}},
				{traits: map[string]any{"phone": 15555550100.0}, wantChanged: true, wantWarn: []string{"phone: want a string or an array of strings"}},
			},
			check: func(t *testing.T, p Profile) {
				wantList(t, "$sms", p.SMS)
				wantList(t, "$whatsapp", p.WhatsApp)
			},
		},
		{
			name:    "replace: null clears the slot, all-invalid keeps it",
			mapping: replace,
			steps: []step{
				{traits: map[string]any{"email": "a@example.com", "phone": "+15555550100"}, wantChanged: true},
				{traits: map[string]any{"email": "typo@", "phone": nil}, wantChanged: true, wantWarn: []string{"email: not an email"}},
			},
			check: func(t *testing.T, p Profile) {
				wantList(t, "$email", p.Email, "a@example.com")
				wantList(t, "$sms", p.SMS)
			},
		},
		{
			name:    "append: null and empty change no channel",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"email": "a@example.com"}, wantChanged: true},
				{traits: map[string]any{"email": nil}, wantChanged: true}, // properties.email became null
				{traits: map[string]any{"email": ""}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) { wantList(t, "$email", p.Email, "a@example.com") },
		},
		{
			name:    "replace of slack email keeps slack user id; fcm replace keeps xiaomi",
			mapping: replace,
			steps: []step{
				{traits: map[string]any{"slackEmail": "a@corp.example.com", "slackUserID": "U1", "fcmAndroidpush": "f1", "xiaomiAndroidpush": "x1"}, wantChanged: true},
				{traits: map[string]any{"slackEmail": "b@corp.example.com", "fcmAndroidpush": []any{"f2", "f3"}}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) {
				assertJSON(t, map[string]any{"slack": p.Slack, "android": p.AndroidPush}, `{
					"slack": [{"user_id": "U1"}, {"email": "b@corp.example.com"}],
					"android": [{"token": "x1", "provider": "xiaomi"}, {"token": "f2", "provider": "fcm"}, {"token": "f3", "provider": "fcm"}]
				}`)
			},
		},
		{
			name:    "custom channel and preference map",
			mapping: custom,
			steps: []step{
				{traits: map[string]any{"email": "home@example.com", "work_email": "work@example.com", "mobile": "+442071838750", "locale": "fr", "language": "de"}, wantChanged: true},
			},
			check: func(t *testing.T, p Profile) {
				wantList(t, "$email", p.Email, "work@example.com")
				wantList(t, "$sms", p.SMS, "+442071838750")
				if p.PreferredLanguage != "fr" {
					t.Errorf("$preferred_language = %q, want fr from the locale trait", p.PreferredLanguage)
				}
				if p.Properties["email"] != "home@example.com" {
					t.Error("unmapped traits must still land in properties")
				}
			},
		},
		{
			name:    "properties merge over existing ones",
			mapping: DefaultMapping(),
			steps: []step{
				{traits: map[string]any{"plan": "free", "name": "Peter"}, wantChanged: true},
				{traits: map[string]any{"plan": "premium"}, wantChanged: true},
				{traits: map[string]any{"plan": "premium"}, wantChanged: false},
				{traits: map[string]any{}, wantChanged: false},
			},
			check: func(t *testing.T, p Profile) {
				assertJSON(t, p.Properties, `{"plan": "premium", "name": "Peter"}`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProfile("u", t0)
			for i, s := range tt.steps {
				warnings, changed := ApplyIdentify(&p, s.traits, tt.mapping)
				if changed != s.wantChanged {
					t.Errorf("step %d: changed = %v, want %v", i, changed, s.wantChanged)
				}
				if len(warnings) != len(s.wantWarn) {
					t.Errorf("step %d: warnings = %+v, want %d: %q", i, warnings, len(s.wantWarn), s.wantWarn)
					continue
				}
				for j, w := range warnings {
					field, reason, _ := strings.Cut(s.wantWarn[j], ": ")
					if w.Field != field || !strings.Contains(w.Reason, reason) {
						t.Errorf("step %d: warning %d = %+v, want field %q reason containing %q", i, j, w, field, reason)
					}
				}
			}
			tt.check(t, p)
		})
	}
}

// A rejected value is named and shown on the warning, as the message status will show it.
func TestWarningShape(t *testing.T) {
	p := NewProfile("u", t0)
	warnings, _ := ApplyIdentify(&p, map[string]any{"language": "hindi"}, DefaultMapping())
	assertJSON(t, warnings, `[{"field": "language", "value": "hindi", "reason": "not an ISO 639-1 language code (want two letters, e.g. \"hi\" or \"en\")"}]`)
}

func wantList(t *testing.T, name string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %q, want %q", name, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%s = %q, want %q", name, got, want)
			return
		}
	}
}

func TestMappingValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(m *Mapping)
		wantErr string
	}{
		{"default is valid", func(m *Mapping) {}, ""},
		{"empty policy means append", func(m *Mapping) { m.ChannelPolicy = "" }, ""},
		{"replace", func(m *Mapping) { m.ChannelPolicy = PolicyReplace }, ""},
		{"no maps at all", func(m *Mapping) { *m = Mapping{} }, ""},
		{"unknown channel slot", func(m *Mapping) { m.ChannelMap["$slack"] = "slackEmail" }, `unknown channel slot "$slack"`},
		{"unknown channel", func(m *Mapping) { m.ChannelMap["$fax"] = "fax" }, `unknown channel slot "$fax"`},
		{"empty trait key", func(m *Mapping) { m.ChannelMap[SlotEmail] = " " }, `channel slot "$email" has an empty trait key`},
		{"unknown preference key", func(m *Mapping) { m.PreferenceMap["$locale"] = "locale" }, `unknown preference key "$locale"`},
		{"preference key without $", func(m *Mapping) { m.PreferenceMap["timezone"] = "tz" }, `unknown preference key "timezone"`},
		{"empty preference trait", func(m *Mapping) { m.PreferenceMap[PrefTimezone] = "" }, `preference key "$timezone" has an empty trait key`},
		{"bad policy", func(m *Mapping) { m.ChannelPolicy = "override" }, `channel_policy: "override"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := DefaultMapping()
			tt.edit(&m)
			err := m.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// Each call gets its own maps, so one destination editing its mapping cannot change another's.
func TestDefaultMappingIsFresh(t *testing.T) {
	a := DefaultMapping()
	a.ChannelMap[SlotEmail] = "changed"
	if DefaultMapping().ChannelMap[SlotEmail] != "email" {
		t.Error("DefaultMapping shares its maps between calls")
	}
}

func TestApplyGroup(t *testing.T) {
	p := NewProfile("u", t0)
	if !ApplyGroup(&p, "g1") {
		t.Error("first group: changed = false")
	}
	if ApplyGroup(&p, "g1") {
		t.Error("same group again: changed = true")
	}
	if !ApplyGroup(&p, "g2") {
		t.Error("second group: changed = false")
	}
	if ApplyGroup(&p, "") {
		t.Error("empty group id: changed = true")
	}
	assertJSON(t, p.Properties, `{"$groups": ["g1", "g2"]}`)

	var empty Profile
	if !ApplyGroup(&empty, "g") {
		t.Error("profile with nil properties: changed = false")
	}
	assertJSON(t, empty.Properties, `{"$groups": ["g"]}`)
}

func TestMergeAlias(t *testing.T) {
	into := NewProfile("user-1", t0)
	ApplyIdentify(&into, map[string]any{"email": "a@example.com", "plan": "premium", "language": "hi"}, DefaultMapping())
	ApplyGroup(&into, "g1")

	from := NewProfile("anon-1", t0.Add(-time.Hour))
	from.UpdatedAt = t0.Add(time.Minute)
	ApplyIdentify(&from, map[string]any{
		"email": []any{"A@example.com", "b@example.com"}, "plan": "free", "referrer": "ad",
		"language": "fr", "timezone": "Europe/Paris", "fcmAndroidpush": "tok",
	}, DefaultMapping())
	ApplyGroup(&from, "g2")
	ApplyGroup(&from, "g1")

	MergeAlias(&into, from)
	assertJSON(t, into, `{
		"distinct_id": "user-1",
		"properties": {"email": "a@example.com", "plan": "premium", "language": "hi", "referrer": "ad",
			"timezone": "Europe/Paris", "fcmAndroidpush": "tok", "$groups": ["g1", "g2"]},
		"$email": ["a@example.com", "b@example.com"], "$sms": [], "$whatsapp": [], "$slack": [],
		"$androidpush": [{"token": "tok", "provider": "fcm"}], "$iospush": [],
		"$preferred_language": "hi", "$timezone": "Europe/Paris",
		"created_at": "2024-03-20T14:30:00Z", "updated_at": "2024-03-20T15:31:00Z"
	}`)
}

func TestProfileJSONHasNoNulls(t *testing.T) {
	assertJSON(t, Profile{DistinctID: "u"}, `{
		"distinct_id": "u", "properties": {},
		"$email": [], "$sms": [], "$whatsapp": [], "$slack": [], "$androidpush": [], "$iospush": [],
		"created_at": "0001-01-01T00:00:00Z", "updated_at": "0001-01-01T00:00:00Z"
	}`)
	// And it decodes back into the same profile, as the store will read it.
	p := NewProfile("u", t0)
	ApplyIdentify(&p, map[string]any{"email": "a@example.com", "slackUserID": "U1", "apnsIospush": "t", "timezone": "UTC"}, DefaultMapping())
	b, _ := json.Marshal(p)
	var back Profile
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Errorf("round trip changed the profile:\n%s\n%s", b, b2)
	}
}

func TestLanguageCodes(t *testing.T) {
	if n := len(languageCodes); n != 184 {
		t.Errorf("%d language codes, want 184 (183 ISO 639-1 codes + sh)", n)
	}
	if n := len(strings.Fields(languageList)); n != len(languageCodes) {
		t.Errorf("language list has %d entries but %d distinct codes", n, len(languageCodes))
	}
	for c := range languageCodes {
		if len(c) != 2 || c[0] < 'a' || c[0] > 'z' || c[1] < 'a' || c[1] > 'z' {
			t.Errorf("code %q is not two lower-case letters", c)
		}
	}
	for _, c := range []string{"hi", "en", "zh", "sh", "zu", "aa"} {
		if _, ok := languageCodes[c]; !ok {
			t.Errorf("%q missing", c)
		}
	}
}

// TestUserFilterExplainsAnUnescapedPlus: ?phone=+1555… arrives as " 1555…" (a "+" in a query
// is a space); the answer says to write %2B.
func TestUserFilterExplainsAnUnescapedPlus(t *testing.T) {
	_, err := UserFilter{Phone: " 15555550123"}.StoreFilter("ten_x")
	if err == nil || !strings.Contains(err.Error(), "a leading + must be written %2B") {
		t.Fatalf("unescaped +: %v", err)
	}
	if _, err := (UserFilter{Phone: "+15555550123"}).StoreFilter("ten_x"); err != nil {
		t.Fatalf("escaped +: %v", err)
	}
}
