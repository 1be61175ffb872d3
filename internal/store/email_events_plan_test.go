package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEventQueryPlans checks with EXPLAIN QUERY PLAN that the common searches use their index
// and read the rows in order (no sort of every match) where the index allows.
func TestEventQueryPlans(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		f       EventFilter
		index   string
		noSort  bool // the index gives the newest-first order (at most ties on ts are sorted by id)
		count   string
		countIn string // the index the count reads ("" when it uses the hourly counts)
	}{
		{name: "unfiltered", f: EventFilter{}, index: "email_events_ts", noSort: true},
		{name: "time range", f: EventFilter{From: day, To: day.Add(24 * time.Hour)}, index: "email_events_ts", noSort: true},
		{name: "recipient", noSort: true, f: EventFilter{Recipients: []string{"ada@example.com"}}, index: "email_events_recipient", countIn: "email_events_recipient"},
		{name: "campaign", noSort: true, f: EventFilter{Campaigns: []string{"spring"}}, index: "email_events_campaign", countIn: "email_events_campaign"},
		{name: "campaign + type + day", noSort: true, f: EventFilter{Campaigns: []string{"spring"}, Types: []string{"bounce"}, From: day, To: day.Add(24 * time.Hour)},
			index: "email_events_campaign", countIn: "email_events_campaign"},
		{name: "campaign wildcard", f: EventFilter{Campaigns: []string{"spring*"}}, index: "email_events_campaign", countIn: "email_events_campaign"},
		{name: "type + time", f: EventFilter{Types: []string{"click"}, From: day}, index: "email_events_type", noSort: true},
		{name: "message id", f: EventFilter{Messages: []string{"000443ee14578172be22"}, Types: []string{"click"}}, index: "email_events_message", countIn: "email_events_message"},
		{name: "event ids", f: EventFilter{EventIDs: []string{"1", "2"}}, index: "email_events_event", countIn: "email_events_event"},
		{name: "template", noSort: true, f: EventFilter{Templates: []string{"t"}}, index: "email_events_template", countIn: "email_events_template"},
		{name: "transmission", noSort: true, f: EventFilter{Transmissions: []string{"t"}}, index: "email_events_transmission", countIn: "email_events_transmission"},
		{name: "bounce class", noSort: true, f: EventFilter{BounceClasses: []string{"10"}, From: day}, index: "email_events_bounce_class", countIn: "email_events_bounce_class"},
		{name: "subaccount", noSort: true, f: EventFilter{Subaccounts: []string{"3"}}, index: "email_events_subaccount", countIn: "email_events_subaccount"},
	}
	plan := func(q string, args []any) string {
		rows, err := db.reader.Query(`EXPLAIN QUERY PLAN `+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		return strings.Join(lines, "\n")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.f.TenantID, c.f.Limit = "ten_x", 1000
			c.f.BeforeTime, c.f.BeforeID = day.Add(time.Hour), 99
			p := plan(c.f.pageQuery())
			if !strings.Contains(p, "USING INDEX "+c.index+" ") && !strings.Contains(p, "USING COVERING INDEX "+c.index+" ") {
				t.Errorf("page query does not use %s:\n%s", c.index, p)
			}
			if !strings.Contains(p, "USING INDEX deliveries_ref") {
				t.Errorf("delivery join does not use deliveries_ref:\n%s", p)
			}
			if c.noSort && strings.Contains(p, "TEMP B-TREE FOR ORDER BY") {
				t.Errorf("page query sorts:\n%s", p)
			}
			var cp string
			if q, args, ok := c.f.rolledCount(); ok {
				cp = plan(q, args)
				if c.countIn != "" || !strings.Contains(cp, "email_event_counts") || !strings.Contains(cp, "INTEGER PRIMARY KEY") {
					t.Errorf("count does not add up the hourly counts:\n%s", cp)
				}
			} else {
				cp = plan(c.f.countQuery())
				if c.countIn == "" || !strings.Contains(cp, c.countIn) {
					t.Errorf("count does not use %s:\n%s", c.countIn, cp)
				}
			}
			if strings.Contains(cp, "SCAN e") {
				t.Errorf("count scans the table:\n%s", cp)
			}
		})
	}
}
