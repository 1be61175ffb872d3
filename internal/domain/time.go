package domain

import (
	"time"
	_ "time/tzdata" // timezone= must work on hosts without /usr/share/zoneinfo (minimal containers)
)

// LoadLocation reads the timezone parameter: an IANA time zone name (Europe/Berlin, America/New_York, UTC).
func LoadLocation(name string) (*time.Location, error) {
	if name != "Local" && len(name) <= 64 {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, nil
		}
	}
	return nil, Errorf(EINVALID, "timezone: %q is not an IANA time zone name such as Europe/Berlin or America/New_York", name)
}

// Time layouts accepted for from and to. Those without an offset are local times in the
// query's timezone (UTC unless given), as SparkPost reads them.
var (
	zonedLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00"}
	localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}
)

// ParseTime reads an ISO-8601 time for the named parameter; a time without an offset is read in
// loc. A local time that a daylight-saving change skips is read with the offset before the change.
func ParseTime(name, v string, loc *time.Location) (time.Time, error) {
	for _, layout := range zonedLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, Errorf(EINVALID,
		"%s: %q is not an ISO-8601 time such as 2024-05-01T00:00:00Z, or a local time such as 2024-05-01T00:00 read in timezone", name, v)
}
