package destination

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Profile is a subscriber profile in the SPEC §6.3 shape (its JSON encoding IS the API response).
//
// Functions here never set CreatedAt or UpdatedAt from the clock (MergeAlias only combines
// the two profiles' times): the caller stamps them when it stores a changed profile, so replay
// stays deterministic.
type Profile struct {
	DistinctID        string         `json:"distinct_id"`
	Properties        map[string]any `json:"properties"`
	Email             []string       `json:"$email"`
	SMS               []string       `json:"$sms"`
	WhatsApp          []string       `json:"$whatsapp"`
	Slack             []SlackChannel `json:"$slack"`
	AndroidPush       []PushToken    `json:"$androidpush"`
	IOSPush           []PushToken    `json:"$iospush"`
	PreferredLanguage string         `json:"$preferred_language,omitempty"`
	Timezone          string         `json:"$timezone,omitempty"`
	CreatedAt         time.Time      `json:"created_at"`
	UpdatedAt         time.Time      `json:"updated_at"`
}

// SlackChannel is one Slack address of a subscriber: exactly one of Email and UserID is set.
type SlackChannel struct {
	Email  string `json:"email,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// PushToken is one device of a subscriber, with the provider that issued the token.
type PushToken struct {
	Token    string `json:"token"`
	Provider string `json:"provider"` // "fcm" or "xiaomi" on $androidpush, "apns" on $iospush
}

// Warning is one rejected value, reported on the inbound message.
type Warning struct {
	Field  string `json:"field"`  // the trait key the value came from
	Value  string `json:"value"`  // the value as sent, cut to a readable length
	Reason string `json:"reason"` // why it was not stored
}

// NewProfile returns an empty profile for distinctID created at now.
func NewProfile(distinctID string, now time.Time) Profile {
	return Profile{DistinctID: distinctID, Properties: map[string]any{}, CreatedAt: now, UpdatedAt: now}
}

// MarshalJSON encodes p with [] and {} where p has nil slices or maps, because API clients
// iterate over channels and should not have to handle null.
func (p Profile) MarshalJSON() ([]byte, error) {
	type plain Profile // drops the method, so json.Marshal does not recurse
	q := plain(p)
	if q.Properties == nil {
		q.Properties = map[string]any{}
	}
	q.Email = nonNil(q.Email)
	q.SMS = nonNil(q.SMS)
	q.WhatsApp = nonNil(q.WhatsApp)
	q.Slack = nonNil(q.Slack)
	q.AndroidPush = nonNil(q.AndroidPush)
	q.IOSPush = nonNil(q.IOSPush)
	return json.Marshal(q)
}

// nonNil returns s, or an empty slice when s is nil.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// channelSlot knows how to read, add and clear one slot's values on a profile; slots that
// share a channel ($slack, $androidpush) only ever touch their own entries.
type channelSlot struct {
	name      string
	normalize func(string) (string, string)
	same      func(a, b string) bool
	values    func(p *Profile) []string
	add       func(p *Profile, v string)
	clear     func(p *Profile)
}

// slots lists every channel slot in the order warnings are reported.
var slots = []channelSlot{
	stringSlot(SlotEmail, normalizeEmail, sameEmail, func(p *Profile) *[]string { return &p.Email }),
	stringSlot(SlotSMS, normalizePhone, sameString, func(p *Profile) *[]string { return &p.SMS }),
	stringSlot(SlotWhatsApp, normalizePhone, sameString, func(p *Profile) *[]string { return &p.WhatsApp }),
	slackSlot(SlotSlackEmail, normalizeEmail, sameEmail,
		func(c SlackChannel) string { return c.Email }, func(v string) SlackChannel { return SlackChannel{Email: v} }),
	slackSlot(SlotSlackUserID, normalizeSlackUserID, sameString,
		func(c SlackChannel) string { return c.UserID }, func(v string) SlackChannel { return SlackChannel{UserID: v} }),
	pushSlot(SlotAndroidFCM, "fcm", func(p *Profile) *[]PushToken { return &p.AndroidPush }),
	pushSlot(SlotAndroidXiaomi, "xiaomi", func(p *Profile) *[]PushToken { return &p.AndroidPush }),
	pushSlot(SlotIOSAPNs, "apns", func(p *Profile) *[]PushToken { return &p.IOSPush }),
}

// slotByName indexes slots for Mapping.Validate.
var slotByName = func() map[string]channelSlot {
	m := map[string]channelSlot{}
	for _, s := range slots {
		m[s.name] = s
	}
	return m
}()

// slotNames returns the slot names in report order, for error messages.
func slotNames() []string {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = s.name
	}
	return names
}

// sameString is exact comparison, for phone numbers (already E.164), ids and tokens.
func sameString(a, b string) bool { return a == b }

// stringSlot is a slot that owns a whole []string channel.
func stringSlot(name string, normalize func(string) (string, string), same func(a, b string) bool, field func(*Profile) *[]string) channelSlot {
	return channelSlot{
		name: name, normalize: normalize, same: same,
		values: func(p *Profile) []string { return *field(p) },
		add:    func(p *Profile, v string) { *field(p) = append(*field(p), v) },
		clear:  func(p *Profile) { *field(p) = nil },
	}
}

// slackSlot is one kind of $slack entry (email or user id).
func slackSlot(name string, normalize func(string) (string, string), same func(a, b string) bool,
	get func(SlackChannel) string, build func(string) SlackChannel) channelSlot {
	return channelSlot{
		name: name, normalize: normalize, same: same,
		values: func(p *Profile) []string {
			var vs []string
			for _, c := range p.Slack {
				if v := get(c); v != "" {
					vs = append(vs, v)
				}
			}
			return vs
		},
		add: func(p *Profile, v string) { p.Slack = append(p.Slack, build(v)) },
		clear: func(p *Profile) {
			kept := p.Slack[:0:0]
			for _, c := range p.Slack {
				if get(c) == "" {
					kept = append(kept, c)
				}
			}
			p.Slack = kept
		},
	}
}

// pushSlot is one provider's tokens on a push channel.
func pushSlot(name, provider string, field func(*Profile) *[]PushToken) channelSlot {
	return channelSlot{
		name: name, normalize: normalizeToken, same: sameString,
		values: func(p *Profile) []string {
			var vs []string
			for _, t := range *field(p) {
				if t.Provider == provider {
					vs = append(vs, t.Token)
				}
			}
			return vs
		},
		add: func(p *Profile, v string) { *field(p) = append(*field(p), PushToken{Token: v, Provider: provider}) },
		clear: func(p *Profile) {
			var kept []PushToken
			for _, t := range *field(p) {
				if t.Provider != provider {
					kept = append(kept, t)
				}
			}
			*field(p) = kept
		},
	}
}

// ApplyIdentify merges traits into p (properties = all traits merged over existing; channels appended without duplicates, or replaced per channel slot when ChannelPolicy=="replace" and the trait is present; preferences set). Returns warnings for rejected values. changed reports whether p changed at all.
//
// A channel trait may be a string or an array of strings. null, "" and [] mean "no value":
// nothing under append, an emptied slot under replace. Under replace, a trait whose values are
// all invalid leaves the slot as it was, so a typo cannot erase a working address. A null or
// empty preference leaves the stored preference alone. Warnings come in slot order, then
// $preferred_language, then $timezone, so the same message always reports the same way.
func ApplyIdentify(p *Profile, traits map[string]any, m Mapping) (warnings []Warning, changed bool) {
	if p == nil {
		return nil, false
	}
	if len(traits) > 0 && p.Properties == nil {
		p.Properties = map[string]any{}
	}
	for k, v := range traits {
		if old, ok := p.Properties[k]; !ok || !reflect.DeepEqual(old, v) {
			p.Properties[k] = v
			changed = true
		}
	}

	for _, s := range slots {
		key := m.ChannelMap[s.name]
		raw, present := traits[key]
		if key == "" || !present {
			continue
		}
		vals, ws, empty := channelValues(key, raw, s.normalize)
		warnings = append(warnings, ws...)
		current := s.values(p)
		if m.ChannelPolicy == PolicyReplace {
			if empty || len(vals) > 0 {
				vals = dedupe(vals, s.same)
				if !slices.Equal(current, vals) {
					s.clear(p)
					for _, v := range vals {
						s.add(p, v)
					}
					changed = true
				}
			}
			continue
		}
		for _, v := range vals {
			if !containsFunc(current, v, s.same) {
				s.add(p, v)
				current = append(current, v)
				changed = true
			}
		}
	}

	for _, pref := range []struct {
		key       string
		normalize func(string) (string, string)
		dst       *string
	}{
		{PrefLanguage, normalizeLanguage, &p.PreferredLanguage},
		{PrefTimezone, normalizeTimezone, &p.Timezone},
	} {
		key := m.PreferenceMap[pref.key]
		raw, present := traits[key]
		if key == "" || !present || raw == nil {
			continue
		}
		s, ok := raw.(string)
		if !ok {
			warnings = append(warnings, Warning{Field: key, Value: showValue(raw), Reason: "want a string"})
			continue
		}
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, reason := pref.normalize(s)
		if reason != "" {
			warnings = append(warnings, Warning{Field: key, Value: domain.Truncate(s, 256), Reason: reason})
			continue
		}
		if *pref.dst != v {
			*pref.dst = v
			changed = true
		}
	}
	return warnings, changed
}

// channelValues reads a channel trait into normalized values; empty reports an explicit "no
// value" (null, "", []), which replace treats as clearing the slot.
func channelValues(key string, raw any, normalize func(string) (string, string)) (vals []string, warnings []Warning, empty bool) {
	var items []any
	switch v := raw.(type) {
	case nil:
		return nil, nil, true
	case string:
		items = []any{v}
	case []any:
		items = v
	case []string:
		for _, s := range v {
			items = append(items, s)
		}
	default:
		return nil, []Warning{{Field: key, Value: showValue(raw), Reason: "want a string or an array of strings"}}, false
	}
	sawValue := false
	for _, item := range items {
		s, ok := item.(string)
		if !ok {
			sawValue = sawValue || item != nil
			if item != nil {
				warnings = append(warnings, Warning{Field: key, Value: showValue(item), Reason: "want a string"})
			}
			continue
		}
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		sawValue = true
		v, reason := normalize(s)
		if reason != "" {
			warnings = append(warnings, Warning{Field: key, Value: domain.Truncate(s, 256), Reason: reason})
			continue
		}
		vals = append(vals, v)
	}
	return vals, warnings, !sawValue
}

// showValue renders a non-string trait value for a warning.
func showValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return domain.Truncate(fmt.Sprint(v), 256)
	}
	return domain.Truncate(string(b), 256)
}

// containsFunc reports whether list holds a value same as v.
func containsFunc(list []string, v string, same func(a, b string) bool) bool {
	for _, x := range list {
		if same(x, v) {
			return true
		}
	}
	return false
}

// dedupe drops later duplicates, so ["a@x.com", "A@x.com"] stores one address.
func dedupe(vals []string, same func(a, b string) bool) []string {
	var out []string
	for _, v := range vals {
		if !containsFunc(out, v, same) {
			out = append(out, v)
		}
	}
	return out
}

// groupsKey is the property group calls maintain (SPEC §6.4).
const groupsKey = "$groups"

// ApplyGroup adds groupID to p.Properties["$groups"], a list without duplicates, and reports
// whether p changed. A non-list value found there (a trait named "$groups") is kept as the
// list's first entries when it holds strings.
func ApplyGroup(p *Profile, groupID string) bool {
	if p == nil || groupID == "" {
		return false
	}
	groups := groupsOf(p.Properties)
	for _, g := range groups {
		if g == groupID {
			return false
		}
	}
	list := make([]any, 0, len(groups)+1)
	for _, g := range groups {
		list = append(list, g)
	}
	if p.Properties == nil {
		p.Properties = map[string]any{}
	}
	p.Properties[groupsKey] = append(list, groupID)
	return true
}

// groupsOf reads the string group ids stored in props, in order, as a fresh slice.
func groupsOf(props map[string]any) []string {
	var out []string
	switch v := props[groupsKey].(type) {
	case string:
		out = append(out, v)
	case []string:
		out = append(out, v...)
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// MergeAlias merges the profile from (the alias's previousId) into into (its userId): channels
// united without duplicates, into's properties and preferences win where both have one, group
// memberships united, the earliest created_at and latest updated_at kept. into keeps its
// distinct_id; deleting from is the caller's job.
func MergeAlias(into *Profile, from Profile) {
	if into == nil {
		return
	}
	for k, v := range from.Properties {
		if _, ok := into.Properties[k]; ok || k == groupsKey {
			continue
		}
		if into.Properties == nil {
			into.Properties = map[string]any{}
		}
		into.Properties[k] = v
	}
	for _, g := range groupsOf(from.Properties) {
		ApplyGroup(into, g)
	}
	for _, s := range slots {
		current := s.values(into)
		for _, v := range s.values(&from) {
			if !containsFunc(current, v, s.same) {
				s.add(into, v)
				current = append(current, v)
			}
		}
	}
	if into.PreferredLanguage == "" {
		into.PreferredLanguage = from.PreferredLanguage
	}
	if into.Timezone == "" {
		into.Timezone = from.Timezone
	}
	if !from.CreatedAt.IsZero() && (into.CreatedAt.IsZero() || from.CreatedAt.Before(into.CreatedAt)) {
		into.CreatedAt = from.CreatedAt
	}
	if from.UpdatedAt.After(into.UpdatedAt) {
		into.UpdatedAt = from.UpdatedAt
	}
}
