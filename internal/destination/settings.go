package destination

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Hold bounds: a track waits for its identify at most this long (SPEC §6.4 default 10 min). The
// maximum keeps a held delivery well inside the outbox's 72 h retry window.
const (
	DefaultHoldFor = 10 * time.Minute
	MaxHoldFor     = 24 * time.Hour
)

// Settings are a destination's options (SPEC §6.5).
type Settings struct {
	PrefixEvents     bool
	ChannelMap       map[string]string // channel slot → trait key
	PreferenceMap    map[string]string // $preferred_language / $timezone → trait key
	ChannelPolicy    string            // append | replace
	RequireSignature bool
	HoldFor          time.Duration
}

// DefaultSettings returns the settings of a destination created with none given.
func DefaultSettings() Settings {
	m := DefaultMapping()
	return Settings{
		ChannelMap: m.ChannelMap, PreferenceMap: m.PreferenceMap, ChannelPolicy: PolicyAppend, HoldFor: DefaultHoldFor,
	}
}

// Mapping returns the identify mapping the settings describe.
func (s Settings) Mapping() Mapping {
	return Mapping{ChannelMap: s.ChannelMap, PreferenceMap: s.PreferenceMap, ChannelPolicy: s.ChannelPolicy}
}

// storedSettings is the settings' JSON in the database; hold_for is kept in milliseconds so that
// its meaning never depends on how a duration string is parsed.
type storedSettings struct {
	PrefixEvents     bool              `json:"prefix_events"`
	ChannelMap       map[string]string `json:"channel_map"`
	PreferenceMap    map[string]string `json:"preference_map"`
	ChannelPolicy    string            `json:"channel_policy"`
	RequireSignature bool              `json:"require_signature"`
	HoldForMS        int64             `json:"hold_for_ms"`
}

// Encode returns the settings as stored.
func (s Settings) Encode() []byte {
	b, _ := json.Marshal(storedSettings{
		PrefixEvents: s.PrefixEvents, ChannelMap: nonNilMap(s.ChannelMap), PreferenceMap: nonNilMap(s.PreferenceMap),
		ChannelPolicy: s.ChannelPolicy, RequireSignature: s.RequireSignature, HoldForMS: s.HoldFor.Milliseconds(),
	})
	return b
}

// settingsCache maps stored settings JSON to its decoded form: every hook call reads its
// destination's settings, and they change rarely. It is emptied when it grows past
// maxCachedSettings, so old versions cannot pile up.
var (
	settingsMu    sync.Mutex
	settingsCache = map[string]Settings{}
)

const maxCachedSettings = 4096

// DecodeSettings reads settings as stored by Encode. The maps of the result are shared with
// other callers: read them, never change them (SettingsInput.Apply copies before it changes).
func DecodeSettings(b []byte) (Settings, error) {
	settingsMu.Lock()
	s, ok := settingsCache[string(b)]
	settingsMu.Unlock()
	if ok {
		return s, nil
	}
	s, err := decodeSettings(b)
	if err != nil {
		return s, err
	}
	settingsMu.Lock()
	if len(settingsCache) >= maxCachedSettings {
		clear(settingsCache)
	}
	settingsCache[string(b)] = s
	settingsMu.Unlock()
	return s, nil
}

func decodeSettings(b []byte) (Settings, error) {
	var st storedSettings
	if err := json.Unmarshal(b, &st); err != nil {
		return Settings{}, fmt.Errorf("destination: stored settings: %w", err)
	}
	s := Settings{
		PrefixEvents: st.PrefixEvents, ChannelMap: nonNilMap(st.ChannelMap), PreferenceMap: nonNilMap(st.PreferenceMap),
		ChannelPolicy: st.ChannelPolicy, RequireSignature: st.RequireSignature, HoldFor: time.Duration(st.HoldForMS) * time.Millisecond,
	}
	if s.ChannelPolicy == "" {
		s.ChannelPolicy = PolicyAppend
	}
	return s, nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// SettingsInput is the settings part of a create or PATCH body. Absent fields keep their value;
// in channel_map and preference_map a key set to null removes that mapping (JSON merge patch),
// other keys are added or changed and the rest are kept.
type SettingsInput struct {
	PrefixEvents     *bool              `json:"prefix_events"`
	ChannelMap       map[string]*string `json:"channel_map"`
	PreferenceMap    map[string]*string `json:"preference_map"`
	ChannelPolicy    *string            `json:"channel_policy"`
	RequireSignature *bool              `json:"require_signature"`
	HoldFor          *string            `json:"hold_for"`
}

// Apply returns base changed by in, or an EINVALID error naming the field.
func (in SettingsInput) Apply(base Settings) (Settings, error) {
	s := base
	s.ChannelMap = maps.Clone(nonNilMap(base.ChannelMap))
	s.PreferenceMap = maps.Clone(nonNilMap(base.PreferenceMap))
	if in.PrefixEvents != nil {
		s.PrefixEvents = *in.PrefixEvents
	}
	if in.RequireSignature != nil {
		s.RequireSignature = *in.RequireSignature
	}
	if in.ChannelPolicy != nil {
		s.ChannelPolicy = strings.TrimSpace(*in.ChannelPolicy)
		if s.ChannelPolicy == "" {
			s.ChannelPolicy = PolicyAppend
		}
	}
	for _, f := range []struct {
		patch map[string]*string
		dst   map[string]string
	}{{in.ChannelMap, s.ChannelMap}, {in.PreferenceMap, s.PreferenceMap}} {
		for k, v := range f.patch {
			if v == nil {
				delete(f.dst, k)
			} else {
				f.dst[k] = strings.TrimSpace(*v)
			}
		}
	}
	if err := s.Mapping().Validate(); err != nil {
		return Settings{}, err
	}
	for field, m := range map[string]map[string]string{"channel_map": s.ChannelMap, "preference_map": s.PreferenceMap} {
		for k, v := range m {
			if len(v) > 200 {
				return Settings{}, domain.Errorf(domain.EINVALID, "%s: the trait key of %q is longer than 200 characters", field, k)
			}
		}
	}
	if in.HoldFor != nil {
		d, err := time.ParseDuration(strings.TrimSpace(*in.HoldFor))
		if err != nil {
			return Settings{}, domain.Errorf(domain.EINVALID, "hold_for: %q is not a duration such as \"10m\" or \"30s\"", *in.HoldFor)
		}
		if d < 0 || d > MaxHoldFor {
			return Settings{}, domain.Errorf(domain.EINVALID, "hold_for: must be from 0s (do not wait) to %s", FormatDuration(MaxHoldFor))
		}
		s.HoldFor = d
	}
	return s, nil
}

// FormatDuration renders d as the short Go duration a user would type: "10m", "1h30m", "200ms"
// rather than time.Duration's "10m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
