package destination

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestSettingsInputApply(t *testing.T) {
	s, err := SettingsInput{}.Apply(DefaultSettings())
	if err != nil || s.HoldFor != 10*time.Minute || s.ChannelPolicy != PolicyAppend || s.ChannelMap[SlotEmail] != "email" || s.PrefixEvents {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	s, err = SettingsInput{
		PrefixEvents:  ptr(true),
		ChannelMap:    map[string]*string{SlotSMS: ptr(" mobile "), SlotWhatsApp: nil},
		PreferenceMap: map[string]*string{PrefTimezone: nil},
		ChannelPolicy: ptr("replace"),
		HoldFor:       ptr("200ms"),
	}.Apply(DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	if !s.PrefixEvents || s.ChannelMap[SlotSMS] != "mobile" || s.ChannelMap[SlotEmail] != "email" || s.ChannelPolicy != PolicyReplace || s.HoldFor != 200*time.Millisecond {
		t.Fatalf("applied: %+v", s)
	}
	if _, ok := s.ChannelMap[SlotWhatsApp]; ok {
		t.Fatal("null did not remove $whatsapp")
	}
	if _, ok := s.PreferenceMap[PrefTimezone]; ok {
		t.Fatal("null did not remove $timezone")
	}
	if DefaultSettings().ChannelMap[SlotWhatsApp] != "whatsapp" {
		t.Fatal("Apply changed the base's maps")
	}
	back, err := DecodeSettings(s.Encode())
	if err != nil || back.HoldFor != s.HoldFor || back.ChannelMap[SlotSMS] != "mobile" || !back.PrefixEvents || back.ChannelPolicy != PolicyReplace {
		t.Fatalf("round trip: %+v %v", back, err)
	}

	for _, tc := range []struct {
		in   SettingsInput
		want string
	}{
		{SettingsInput{HoldFor: ptr("soon")}, "hold_for:"},
		{SettingsInput{HoldFor: ptr("-1s")}, "hold_for:"},
		{SettingsInput{HoldFor: ptr("48h")}, "hold_for:"},
		{SettingsInput{ChannelPolicy: ptr("merge")}, "channel_policy:"},
		{SettingsInput{ChannelMap: map[string]*string{"$fax": ptr("fax")}}, "channel_map:"},
		{SettingsInput{ChannelMap: map[string]*string{SlotEmail: ptr(" ")}}, "channel_map:"},
		{SettingsInput{PreferenceMap: map[string]*string{"$currency": ptr("c")}}, "preference_map:"},
		{SettingsInput{ChannelMap: map[string]*string{SlotEmail: ptr(strings.Repeat("k", 201))}}, "channel_map:"},
	} {
		if _, err := tc.in.Apply(DefaultSettings()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.in, err, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Minute: "1h30m", 200 * time.Millisecond: "200ms", 0: "0s", 90 * time.Second: "1m30s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
