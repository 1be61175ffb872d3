package destination

import (
	"strings"
	"testing"
)

func TestNormalizers(t *testing.T) {
	tests := []struct {
		name       string
		normalize  func(string) (string, string)
		in         string
		want       string // stored value; "" means rejected
		wantReason string // substring of the reason when rejected
	}{
		{"phone E.164 kept", normalizePhone, "+15555555555", "+15555555555", ""},
		{"phone punctuation", normalizePhone, "+1 (555) 010-0000", "+15550100000", ""},
		{"phone national trunk 0 in parentheses", normalizePhone, "+44 (0) 20 7183 8750", "+442071838750", ""},
		{"phone trunk 0 twice: its E.164 form would normalize to another number", normalizePhone, "+9100000000000", "", "trunk prefix"},
		{"phone Italian leading zero kept", normalizePhone, "+39 06 1234 5678", "+390612345678", ""},
		{"phone vanity letters", normalizePhone, "+1-800-FLOWERS", "+18003569377", ""},
		{"phone extension dropped: SMS cannot dial it", normalizePhone, "+1 555 010 0000 ext. 12", "+15550100000", ""},
		{"phone without +", normalizePhone, "5550100000", "", "leading + and country code"},
		{"phone with 00 international prefix", normalizePhone, "0044 20 7183 8750", "", "leading + and country code"},
		{"phone unknown country", normalizePhone, "+999 1234567", "", "country code"},
		{"phone too short", normalizePhone, "+1 555", "", "too short"},
		{"phone not a number", normalizePhone, "+call me", "", "not a phone number"},

		{"email plain", normalizeEmail, "peter@example.com", "peter@example.com", ""},
		{"email domain lower-cased, local part kept", normalizeEmail, "Peter.G+news@Example.COM", "Peter.G+news@example.com", ""},
		{"email display name", normalizeEmail, "Peter <peter@example.com>", "", "bare address"},
		{"email angle brackets", normalizeEmail, "<peter@example.com>", "", "bare address"},
		{"email no domain dot", normalizeEmail, "peter@localhost", "", "with a dot"},
		{"email ip literal", normalizeEmail, "peter@[192.168.0.1]", "", ""},
		{"email two addresses", normalizeEmail, "a@example.com, b@example.com", "", "not an email"},
		{"email too long", normalizeEmail, strings.Repeat("a", 250) + "@example.com", "", "254"},

		{"language", normalizeLanguage, "hi", "hi", ""},
		{"language upper", normalizeLanguage, "HI", "hi", ""},
		{"language name", normalizeLanguage, "hindi", "", "ISO 639-1"},
		{"language three letters", normalizeLanguage, "hin", "", "ISO 639-1"},
		{"language tag", normalizeLanguage, "en-US", "", "ISO 639-1"},

		{"timezone", normalizeTimezone, "Asia/Kolkata", "Asia/Kolkata", ""},
		{"timezone UTC", normalizeTimezone, "UTC", "UTC", ""},
		{"timezone Etc", normalizeTimezone, "Etc/GMT+5", "Etc/GMT+5", ""},
		{"timezone Local is the server's zone", normalizeTimezone, "Local", "", "IANA"},
		{"timezone path walk", normalizeTimezone, "../../etc/passwd", "", "IANA"},
		{"timezone absolute path", normalizeTimezone, "/etc/localtime", "", "IANA"},
		{"timezone backslash", normalizeTimezone, `America\New_York`, "", "IANA"},
		{"timezone directory", normalizeTimezone, "America", "", "IANA"},
		{"timezone wrong case", normalizeTimezone, "asia/kolkata", "", "IANA"},
		{"timezone abbreviation", normalizeTimezone, "IST", "", "IANA"},

		{"push token", normalizeToken, "dGhpcyBpcyBhIHRva2Vu", "dGhpcyBpcyBhIHRva2Vu", ""},
		{"push token too long", normalizeToken, strings.Repeat("x", maxChannelValue+1), "", "too long"},
		{"slack user id", normalizeSlackUserID, "U024BE7LH", "U024BE7LH", ""},
		{"slack user id with space", normalizeSlackUserID, "U024 BE7LH", "", "Slack user id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := tt.normalize(tt.in)
			if got != tt.want {
				t.Errorf("normalize(%q) = %q (%s), want %q", tt.in, got, reason, tt.want)
			}
			if tt.want == "" && reason == "" {
				t.Errorf("normalize(%q) rejected without a reason", tt.in)
			}
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tt.wantReason)
			}
			if tt.want != "" {
				if again, r := tt.normalize(got); again != got {
					t.Errorf("stored value %q does not normalize to itself: %q (%s)", got, again, r)
				}
			}
		})
	}
}
