package destination

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// EncodeProfile returns a profile as stored (its API JSON).
func EncodeProfile(p *Profile) []byte {
	b, _ := json.Marshal(p)
	return b
}

// DecodeProfile reads a stored profile. Numbers stay json.Number, as in freshly parsed traits,
// so re-applying an identify compares equal values as equal.
func DecodeProfile(b []byte) (*Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("destination: stored profile: %w", err)
	}
	if p.Properties == nil {
		p.Properties = map[string]any{}
	}
	return &p, nil
}

// channelIndex lists a profile's channel values as indexed for lookups.
func channelIndex(p *Profile) []store.ChannelValue {
	out := []store.ChannelValue{}
	for _, v := range p.Email {
		out = append(out, store.ChannelValue{Channel: "$email", Value: strings.ToLower(v)})
	}
	for _, v := range p.SMS {
		out = append(out, store.ChannelValue{Channel: "$sms", Value: v})
	}
	for _, v := range p.WhatsApp {
		out = append(out, store.ChannelValue{Channel: "$whatsapp", Value: v})
	}
	for _, c := range p.Slack {
		if c.Email != "" {
			out = append(out, store.ChannelValue{Channel: "$slack", Value: strings.ToLower(c.Email)})
		} else if c.UserID != "" {
			out = append(out, store.ChannelValue{Channel: "$slack", Value: c.UserID})
		}
	}
	for _, t := range p.AndroidPush {
		out = append(out, store.ChannelValue{Channel: "$androidpush", Value: t.Token})
	}
	for _, t := range p.IOSPush {
		out = append(out, store.ChannelValue{Channel: "$iospush", Value: t.Token})
	}
	return out
}

// UserFilter is the query of GET …/users: at most one of its fields is set.
type UserFilter struct {
	Email        string // matches $email, case-insensitively
	Phone        string // matches $sms or $whatsapp; normalised to E.164 first
	ChannelValue string // matches any channel value exactly (emails case-insensitively)
}

// StoreFilter turns the query into the store's filter, or an EINVALID error naming the parameter.
func (f UserFilter) StoreFilter(tenantID string) (store.ProfileFilter, error) {
	out := store.ProfileFilter{TenantID: tenantID}
	set := 0
	if f.Email != "" {
		set++
		out.Channels, out.Values = []string{"$email"}, []string{strings.ToLower(strings.TrimSpace(f.Email))}
	}
	if f.Phone != "" {
		set++
		if strings.HasPrefix(f.Phone, " ") && strings.TrimSpace(f.Phone) != "" {
			// A "+" in a query string reads as a space: "?phone=+1555…" arrives as " 1555…".
			return out, domain.Errorf(domain.EINVALID, "phone: begins with a space; a leading + must be written %%2B in a URL (?phone=%%2B15555550123)")
		}
		p, reason := normalizePhone(strings.TrimSpace(f.Phone))
		if reason != "" {
			return out, domain.Errorf(domain.EINVALID, "phone: %s", reason)
		}
		out.Channels, out.Values = []string{"$sms", "$whatsapp"}, []string{p}
	}
	if f.ChannelValue != "" {
		set++
		v := strings.TrimSpace(f.ChannelValue)
		out.Values = []string{v}
		if l := strings.ToLower(v); l != v {
			out.Values = append(out.Values, l)
		}
	}
	if set > 1 {
		return out, domain.Errorf(domain.EINVALID, "email, phone, channel_value: give at most one of them")
	}
	return out, nil
}

// recipient is the recipient object of a workflow POST: a profile without its timestamps.
type recipient struct {
	DistinctID        string         `json:"distinct_id"`
	Email             []string       `json:"$email"`
	SMS               []string       `json:"$sms"`
	WhatsApp          []string       `json:"$whatsapp"`
	Slack             []SlackChannel `json:"$slack"`
	AndroidPush       []PushToken    `json:"$androidpush"`
	IOSPush           []PushToken    `json:"$iospush"`
	PreferredLanguage string         `json:"$preferred_language,omitempty"`
	Timezone          string         `json:"$timezone,omitempty"`
	Properties        map[string]any `json:"properties"`
}

// Recipient returns the recipient object of a workflow POST for a subscriber as it is now:
// {distinct_id, $email, $sms, $whatsapp, $slack, $androidpush, $iospush, $preferred_language,
// $timezone, properties}, with empty channels when the subscriber has no profile.
func Recipient(ctx context.Context, db Profiles, tenantID, distinctID string) (json.RawMessage, error) {
	p := NewProfile(distinctID, zeroTime)
	row, err := db.Profile(ctx, tenantID, distinctID)
	if err != nil && !isNotFound(err) {
		return nil, err
	} else if err == nil {
		stored, err := DecodeProfile(row.Body)
		if err != nil {
			return nil, err
		}
		p = *stored
	}
	return json.Marshal(recipient{
		DistinctID: p.DistinctID, Email: nonNil(p.Email), SMS: nonNil(p.SMS), WhatsApp: nonNil(p.WhatsApp),
		Slack: nonNil(p.Slack), AndroidPush: nonNil(p.AndroidPush), IOSPush: nonNil(p.IOSPush),
		PreferredLanguage: p.PreferredLanguage, Timezone: p.Timezone, Properties: nonNilProps(p.Properties),
	})
}
