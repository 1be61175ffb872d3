package domain

import (
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{
		{Time: time.UnixMilli(1714564860123).UTC(), ID: "evt_1"},
		{ID: "42"},
	} {
		got, err := ParseCursor(c.String())
		if err != nil || !got.Time.Equal(c.Time) || got.ID != c.ID {
			t.Errorf("ParseCursor(%v.String()) = %v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "!!", "e30", "bm90IGpzb24"} { // e30 = {}, the other "not json"
		if _, err := ParseCursor(bad); ErrorCode(err) != EINVALID {
			t.Errorf("ParseCursor(%q): %v, want EINVALID", bad, err)
		}
	}
	if _, err := (Cursor{ID: "x"}).IntID(); ErrorCode(err) != EINVALID {
		t.Errorf("IntID of a non-number: %v", err)
	}
}

func TestParseLimit(t *testing.T) {
	if n, err := ParseLimit("limit", "", 100, 1000); n != 100 || err != nil {
		t.Errorf("default: %d, %v", n, err)
	}
	for _, bad := range []string{"0", "1001", "1.5", "x", "-1"} {
		if _, err := ParseLimit("limit", bad, 100, 1000); ErrorCode(err) != EINVALID || ErrorMessage(err) != "limit: must be a whole number from 1 to 1000" {
			t.Errorf("ParseLimit(%q): %v", bad, err)
		}
	}
}
