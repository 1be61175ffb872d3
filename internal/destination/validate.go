package destination

import (
	"net/mail"
	"strings"
	"sync"
	"time"
	// Embedded zone data makes timezone validation give the same answer on a developer's
	// laptop and in a distroless container with no /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/nyaruka/phonenumbers"
)

// maxChannelValue bounds a single channel value; real push tokens are a few hundred bytes,
// and anything far longer is garbage we should not store on every identify.
const maxChannelValue = 4096

// normalizeEmail returns the stored form of an email address or a reason it is rejected.
// The address must be bare (no display name, no angle brackets or comments) and its domain
// must have a dot. The domain is lower-cased because domains are case-insensitive; the local
// part is kept as sent because RFC 5321 lets a server treat its case as significant.
func normalizeEmail(s string) (string, string) {
	if len(s) > 254 {
		return "", "email address longer than 254 characters"
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", "not an email address (want a bare address like name@example.com)"
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", "email domain " + quoteShort(domain) + " is not a domain name with a dot"
	}
	return local + "@" + strings.ToLower(domain), ""
}

// sameEmail reports whether two stored addresses reach the same mailbox in practice; nearly
// every provider ignores local-part case, and sending twice is what a user would notice.
func sameEmail(a, b string) bool { return strings.EqualFold(a, b) }

// normalizePhone returns a phone number in E.164 or a reason it is rejected. A number without
// a leading + and country code is rejected rather than read in a guessed region: a wrong guess
// texts a stranger. Possibility (a plausible length for the country) is checked, not full
// validity, so documentation numbers such as +1 555 … are accepted as SuprSend accepts them.
// An extension ("ext. 12") is dropped: E.164 has no place for it and SMS cannot dial it.
func normalizePhone(s string) (string, string) {
	if !strings.HasPrefix(s, "+") {
		return "", "phone number needs a leading + and country code (E.164), e.g. +15555550100"
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil {
		return "", "not a phone number: " + err.Error()
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE:
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "", "phone number has an unknown country code"
	case phonenumbers.TOO_SHORT:
		return "", "phone number is too short for its country"
	case phonenumbers.TOO_LONG:
		return "", "phone number is too long for its country"
	default:
		return "", "phone number has an impossible length for its country"
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// A trunk prefix after the country code is dropped (+44 (0) 20 … is +44 20 …). When what
	// is left starts with one again (+91 00 …), the stored form would read as another number,
	// one digit shorter, the next time it is normalized: no real number looks like that, and a
	// stored value must read back as itself. A number sent in its E.164 form already is its own
	// normal form, so only the others are parsed again (a parse is ~40 % of this function, and
	// identifies are applied on the database writer's goroutine).
	if e164 == s {
		return e164, ""
	}
	if again, err := phonenumbers.Parse(e164, ""); err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", "phone number still starts with a trunk prefix (0) after its country code"
	}
	return e164, ""
}

// normalizeToken accepts any non-empty push token of reasonable length: token formats belong
// to FCM, Xiaomi and APNs, which change them, and the provider rejects bad ones on send.
func normalizeToken(s string) (string, string) {
	if len(s) > maxChannelValue {
		return "", "push token is too long"
	}
	return s, ""
}

// normalizeSlackUserID accepts a Slack member id as sent (U…/W…); Slack owns the format.
func normalizeSlackUserID(s string) (string, string) {
	if len(s) > 64 || strings.ContainsAny(s, " \t\r\n") {
		return "", "not a Slack user id"
	}
	return s, ""
}

// normalizeLanguage returns a lower-case ISO 639-1 code or a reason. Only the two-letter code
// is accepted, as SuprSend documents; "hindi" or "en-US" are reported, not guessed at.
func normalizeLanguage(s string) (string, string) {
	code := strings.ToLower(s)
	if _, ok := languageCodes[code]; !ok {
		return "", "not an ISO 639-1 language code (want two letters, e.g. \"hi\" or \"en\")"
	}
	return code, ""
}

// validZones caches names LoadLocation accepted, because it reads and parses a file each
// call; only successes are kept, so hostile input cannot grow the cache past the zone list.
var validZones sync.Map

// normalizeTimezone returns s if it is an IANA zone name, or a reason. LoadLocation opens a
// file named after its argument, so names that could walk the filesystem, and "Local" (the
// server's zone, meaningless for a subscriber), are refused before it is called.
func normalizeTimezone(s string) (string, string) {
	const reason = "not an IANA time zone name (e.g. \"Asia/Kolkata\")"
	if s == "" || s == "Local" || len(s) > 64 || strings.Contains(s, "..") ||
		strings.HasPrefix(s, "/") || strings.ContainsAny(s, "\\\x00") {
		return "", reason
	}
	if _, ok := validZones.Load(s); ok {
		return s, ""
	}
	if _, err := time.LoadLocation(s); err != nil {
		return "", reason
	}
	validZones.Store(s, struct{}{})
	return s, ""
}

// languageList is ISO 639-1: the 183 current two-letter codes (the list SuprSend validates
// against) plus "sh", Serbo-Croatian, withdrawn from ISO 639-1 but still registered in the
// IANA language subtag registry and still sent by older clients.
const languageList = `
aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy
da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht
hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky
la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny
oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg sh si sk sl sm sn so sq sr
ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi
yo za zh zu`

// languageCodes is languageList as a set.
var languageCodes = func() map[string]struct{} {
	set := map[string]struct{}{}
	for _, c := range strings.Fields(languageList) {
		set[c] = struct{}{}
	}
	return set
}()
