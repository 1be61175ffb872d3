package destination

import (
	"sort"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Channel slots: the keys of Mapping.ChannelMap. $slack and $androidpush each appear twice in
// SPEC §6.2 (email / user id, fcm / xiaomi), so a slot names the channel and, after a dot,
// which kind of value the trait holds.
const (
	SlotEmail         = "$email"
	SlotSMS           = "$sms"
	SlotWhatsApp      = "$whatsapp"
	SlotSlackEmail    = "$slack.email"
	SlotSlackUserID   = "$slack.user_id"
	SlotAndroidFCM    = "$androidpush.fcm"
	SlotAndroidXiaomi = "$androidpush.xiaomi"
	SlotIOSAPNs       = "$iospush.apns"
)

// Preference keys: the keys of Mapping.PreferenceMap, named as in the profile's JSON.
const (
	PrefLanguage = "$preferred_language"
	PrefTimezone = "$timezone"
)

// Channel policies: what an identify does to channel values the profile already has.
const (
	PolicyAppend  = "append"  // keep old values, add new ones (SuprSend's behaviour, the default)
	PolicyReplace = "replace" // a present trait replaces that slot's values
)

// Mapping is a destination's identify mapping (SPEC §6.2, §6.5).
//
// The maps are used as given: a slot missing from ChannelMap is not filled. A settings layer
// that accepts partial maps should start from DefaultMapping and overlay the user's keys.
type Mapping struct {
	ChannelMap    map[string]string // channel slot → trait key
	PreferenceMap map[string]string // profile key ($preferred_language, $timezone) → trait key
	ChannelPolicy string            // "append" (default) | "replace"
}

// DefaultMapping returns SPEC §6.2's defaults, which are SuprSend's documented trait keys; each
// call returns fresh maps so a caller may edit its copy.
func DefaultMapping() Mapping {
	return Mapping{
		ChannelMap: map[string]string{
			SlotEmail:         "email",
			SlotSMS:           "phone",
			SlotWhatsApp:      "whatsapp",
			SlotSlackEmail:    "slackEmail",
			SlotSlackUserID:   "slackUserID",
			SlotAndroidFCM:    "fcmAndroidpush",
			SlotAndroidXiaomi: "xiaomiAndroidpush",
			SlotIOSAPNs:       "apnsIospush",
		},
		PreferenceMap: map[string]string{
			PrefLanguage: "language",
			PrefTimezone: "timezone",
		},
		ChannelPolicy: PolicyAppend,
	}
}

// Validate returns an EINVALID error naming the first bad key or value (unknown channel slot,
// unknown preference key, empty trait key, bad policy), checked in sorted order so the same
// bad mapping always gets the same message. An empty policy means append.
func (m Mapping) Validate() error {
	for _, slot := range sortedKeys(m.ChannelMap) {
		if _, ok := slotByName[slot]; !ok {
			return domain.Errorf(domain.EINVALID, "channel_map: unknown channel slot %q (want one of %s)", slot, strings.Join(slotNames(), ", "))
		}
		if strings.TrimSpace(m.ChannelMap[slot]) == "" {
			return domain.Errorf(domain.EINVALID, "channel_map: channel slot %q has an empty trait key", slot)
		}
	}
	for _, key := range sortedKeys(m.PreferenceMap) {
		if key != PrefLanguage && key != PrefTimezone {
			return domain.Errorf(domain.EINVALID, "preference_map: unknown preference key %q (want %s or %s)", key, PrefLanguage, PrefTimezone)
		}
		if strings.TrimSpace(m.PreferenceMap[key]) == "" {
			return domain.Errorf(domain.EINVALID, "preference_map: preference key %q has an empty trait key", key)
		}
	}
	switch m.ChannelPolicy {
	case "", PolicyAppend, PolicyReplace:
	default:
		return domain.Errorf(domain.EINVALID, "channel_policy: %q is not %q or %q", m.ChannelPolicy, PolicyAppend, PolicyReplace)
	}
	return nil
}

// sortedKeys returns the keys of m in order, for deterministic messages.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
