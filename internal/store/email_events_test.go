package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// ev is a test event; empty fields are absent from its body and NULL in the store.
type ev struct {
	id, typ                                     string
	at                                          time.Time
	rcpt, campaign, template, tx, msg, sub, bcl string
}

// seed stores events for a tenant through CommitProcessed, as the processor does, and returns
// them by event id.
func seed(t testing.TB, db *store.DB, tenantID string, evs ...ev) {
	t.Helper()
	pb := &store.ProcessedBatch{Batch: &store.InboxBatch{TenantID: tenantID, SourceID: "src_test", ReceivedAt: time.Now()},
		Target: "segment", MaxAge: time.Hour}
	for _, e := range evs {
		body := map[string]any{"type": e.typ, "event_id": e.id, "timestamp": strconv.FormatInt(e.at.Unix(), 10)}
		for k, v := range map[string]string{"rcpt_to": e.rcpt, "campaign_id": e.campaign, "template_id": e.template,
			"transmission_id": e.tx, "message_id": e.msg, "subaccount_id": e.sub, "bounce_class": e.bcl} {
			if v != "" {
				body[k] = v
			}
		}
		b, _ := json.Marshal(body)
		pb.Events = append(pb.Events, &store.EmailEvent{EventID: e.id, Type: e.typ, Wrapper: "message_event", Time: e.at,
			Recipient: e.rcpt, MessageID: e.msg, CampaignID: e.campaign, TemplateID: e.template, TransmissionID: e.tx,
			SubaccountID: e.sub, BounceClass: e.bcl, Body: b, Status: store.EventNotSent})
	}
	if err := db.CommitProcessed(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
}

// ids returns the event ids of every page of f, following the cursor, newest first.
func ids(t testing.TB, db *store.DB, f store.EventFilter) []string {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 1000
	}
	var out []string
	for {
		page, err := db.EmailEvents(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			out = append(out, e.EventID)
		}
		if len(page) < f.Limit {
			return out
		}
		last := page[len(page)-1]
		f.BeforeTime, f.BeforeID = last.Time, last.ID
	}
}

func count(t testing.TB, db *store.DB, f store.EventFilter) int {
	t.Helper()
	n, err := db.CountEmailEvents(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEmailEventFilters(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "A")
	b, _ := db.CreateTenant(ctx, "B")
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	seed(t, db, a.ID,
		ev{id: "e1", typ: "injection", at: at(0), rcpt: "ada@example.com", campaign: "spring-sale", template: "tpl-1", tx: "tx1", msg: "m1", sub: "0"},
		ev{id: "e2", typ: "delivery", at: at(1), rcpt: "ada@example.com", campaign: "spring-sale", template: "tpl-1", tx: "tx1", msg: "m1", sub: "0"},
		ev{id: "e3", typ: "open", at: at(2), rcpt: "ada@example.com", campaign: "spring-sale", template: "tpl-1", tx: "tx1", msg: "m1", sub: "0"},
		ev{id: "e4", typ: "bounce", at: at(3), rcpt: "bob@example.com", campaign: "spring-sale", template: "tpl-2", tx: "tx1", msg: "m2", sub: "0", bcl: "10"},
		ev{id: "e5", typ: "delivery", at: at(4), rcpt: "cy@example.com", campaign: "summer[1]", template: "tpl-2", tx: "tx2", msg: "m3", sub: "7"},
		ev{id: "e6", typ: "bounce", at: at(5), rcpt: "cy@example.com", campaign: "summer[1]", template: "tpl-2", tx: "tx2", msg: "m3", sub: "7", bcl: "25"},
		ev{id: "e7", typ: "sms_status", at: at(6)},
	)
	// Same values, other tenant: never seen by A's searches.
	seed(t, db, b.ID, ev{id: "b1", typ: "delivery", at: at(1), rcpt: "ada@example.com", campaign: "spring-sale", msg: "m1"})

	cases := []struct {
		name string
		f    store.EventFilter
		want []string
	}{
		{"all, newest first", store.EventFilter{}, []string{"e7", "e6", "e5", "e4", "e3", "e2", "e1"}},
		{"events", store.EventFilter{Types: []string{"delivery", "bounce"}}, []string{"e6", "e5", "e4", "e2"}},
		{"recipients", store.EventFilter{Recipients: []string{"ada@example.com"}}, []string{"e3", "e2", "e1"}},
		{"campaigns", store.EventFilter{Campaigns: []string{"spring-sale"}}, []string{"e4", "e3", "e2", "e1"}},
		{"campaigns wildcard", store.EventFilter{Campaigns: []string{"spr*"}}, []string{"e4", "e3", "e2", "e1"}},
		{"campaigns wildcard keeps [ literal", store.EventFilter{Campaigns: []string{"summer[1]*"}}, []string{"e6", "e5"}},
		{"campaigns exact and wildcard", store.EventFilter{Campaigns: []string{"summer[1]", "spring*"}}, []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
		{"templates", store.EventFilter{Templates: []string{"tpl-2"}}, []string{"e6", "e5", "e4"}},
		{"templates wildcard", store.EventFilter{Templates: []string{"tpl-*"}}, []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
		{"transmissions", store.EventFilter{Transmissions: []string{"tx2"}}, []string{"e6", "e5"}},
		{"messages", store.EventFilter{Messages: []string{"m1", "m3"}}, []string{"e6", "e5", "e3", "e2", "e1"}},
		{"subaccounts", store.EventFilter{Subaccounts: []string{"7"}}, []string{"e6", "e5"}},
		{"bounce_classes", store.EventFilter{BounceClasses: []string{"10"}}, []string{"e4"}},
		{"event_ids", store.EventFilter{EventIDs: []string{"e2", "e7", "b1"}}, []string{"e7", "e2"}},
		{"from inclusive", store.EventFilter{From: at(5)}, []string{"e7", "e6"}},
		{"to exclusive", store.EventFilter{To: at(1)}, []string{"e1"}},
		{"from and to", store.EventFilter{From: at(1), To: at(3)}, []string{"e3", "e2"}},
		{"campaign + type + time", store.EventFilter{Campaigns: []string{"spring-sale"}, Types: []string{"delivery", "open"}, From: at(2)}, []string{"e3"}},
		{"recipient + type", store.EventFilter{Recipients: []string{"cy@example.com"}, Types: []string{"bounce"}}, []string{"e6"}},
		{"message + recipient", store.EventFilter{Messages: []string{"m1", "m2"}, Recipients: []string{"bob@example.com"}}, []string{"e4"}},
		{"template + bounce class + subaccount", store.EventFilter{Templates: []string{"tpl-2"}, BounceClasses: []string{"25", "10"}, Subaccounts: []string{"7"}}, []string{"e6"}},
		{"event id + other filter that excludes it", store.EventFilter{EventIDs: []string{"e1"}, Types: []string{"bounce"}}, nil},
		{"nothing matches", store.EventFilter{Recipients: []string{"x' OR 1=1 --"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.f.TenantID = a.ID
			got := ids(t, db, c.f)
			if !slices.Equal(got, c.want) {
				t.Fatalf("events %v, want %v", got, c.want)
			}
			if n := count(t, db, c.f); n != len(c.want) {
				t.Fatalf("count %d, want %d", n, len(c.want))
			}
			// Paging by one gives the same events in the same order.
			c.f.Limit = 1
			if got := ids(t, db, c.f); !slices.Equal(got, c.want) {
				t.Fatalf("paged by one: %v, want %v", got, c.want)
			}
		})
	}
}

// TestCursorWhileInserting pages through a tenant's events while new events (some with the
// same timestamps as events already read) keep arriving: every event present at the start is
// returned exactly once.
func TestCursorWhileInserting(t *testing.T) {
	db := MustOpenDB(t)
	tn, _ := db.CreateTenant(context.Background(), "A")
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var before []ev
	for i := range 300 {
		// Ten events per second: timestamps tie, the id breaks the tie.
		before = append(before, ev{id: fmt.Sprintf("old-%03d", i), typ: "delivery", at: t0.Add(time.Duration(i/10) * time.Second)})
	}
	seed(t, db, tn.ID, before...)
	f := store.EventFilter{TenantID: tn.ID, Limit: 7}
	seen := map[string]int{}
	for page := 0; ; page++ {
		events, err := db.EmailEvents(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			seen[e.EventID]++
		}
		// Arrivals between pages: newer ones, and ones with the timestamp of the page just read.
		last := t0
		if len(events) > 0 {
			last = events[len(events)-1].Time
		}
		seed(t, db, tn.ID, ev{id: fmt.Sprintf("new-%d", page), typ: "open", at: t0.Add(time.Hour)},
			ev{id: fmt.Sprintf("tie-%d", page), typ: "open", at: last})
		if len(events) < f.Limit {
			break
		}
		l := events[len(events)-1]
		f.BeforeTime, f.BeforeID = l.Time, l.ID
	}
	for _, e := range before {
		if seen[e.id] != 1 {
			t.Fatalf("event %s returned %d times", e.id, seen[e.id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %s returned %d times", id, n)
		}
	}
}

// TestCountsRollUp checks total counts by time and type against a plain count before and after
// the hourly roll-up, with windows that start and end inside hours, and after deletes that
// take the newest events (whose rowids SQLite then reuses).
func TestCountsRollUp(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "A")
	b, _ := db.CreateTenant(ctx, "B")
	t0 := time.Date(2024, 3, 30, 22, 0, 0, 0, time.UTC)
	types := []string{"delivery", "open", "click", "bounce"}
	var evs []ev
	for i := range 600 {
		evs = append(evs, ev{id: fmt.Sprintf("a%d", i), typ: types[i%len(types)], at: t0.Add(time.Duration(i*7) * time.Minute)})
	}
	seed(t, db, a.ID, evs...)
	seed(t, db, b.ID, ev{id: "b0", typ: "delivery", at: t0.Add(time.Hour)})

	exact := func(f store.EventFilter) int {
		n := 0
		for _, e := range evs {
			if (f.From.IsZero() || !e.at.Before(f.From)) && (f.To.IsZero() || e.at.Before(f.To)) &&
				(len(f.Types) == 0 || slices.Contains(f.Types, e.typ)) {
				n++
			}
		}
		return n
	}
	windows := []store.EventFilter{
		{},
		{Types: []string{"open", "bounce"}},
		{From: t0.Add(90 * time.Minute)},
		{To: t0.Add(30*time.Hour + 17*time.Minute)},
		{From: t0.Add(61 * time.Minute), To: t0.Add(40*time.Hour + 1*time.Minute), Types: []string{"click"}},
		{From: t0.Add(2 * time.Hour), To: t0.Add(5 * time.Hour)},
		{From: t0.Add(2*time.Hour + time.Minute), To: t0.Add(2*time.Hour + 40*time.Minute)},
	}
	check := func(stage string) {
		t.Helper()
		for i, f := range windows {
			f.TenantID = a.ID
			if got, want := count(t, db, f), exact(f); got != want {
				t.Fatalf("%s: window %d: count %d, want %d", stage, i, got, want)
			}
		}
	}
	check("nothing rolled up")
	rollupAll(t, db)
	check("rolled up")

	// More events after the roll-up: counted above the mark.
	for i := 600; i < 650; i++ {
		e := ev{id: fmt.Sprintf("a%d", i), typ: types[i%len(types)], at: t0.Add(time.Duration(i*3) * time.Minute)}
		evs = append(evs, e)
		seed(t, db, a.ID, e)
	}
	check("partly rolled up")
	rollupAll(t, db)
	check("rolled up again")

	// Delete the newest rows (as a tenant deletion or retention could), then insert: SQLite
	// reuses their rowids, which must not hide the new events from the counts.
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM email_events WHERE id IN (SELECT id FROM email_events ORDER BY id DESC LIMIT 30)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	remaining := map[string]bool{}
	for _, id := range ids(t, db, store.EventFilter{TenantID: a.ID}) {
		remaining[id] = true
	}
	evs = slices.DeleteFunc(evs, func(e ev) bool { return !remaining[e.id] })
	check("after deleting the newest")
	for i := range 40 {
		e := ev{id: fmt.Sprintf("late%d", i), typ: "open", at: t0.Add(time.Duration(i*11) * time.Minute)}
		evs = append(evs, e)
		seed(t, db, a.ID, e)
	}
	check("after rowid reuse")
	rollupAll(t, db)
	check("rolled up after rowid reuse")
}

func rollupAll(t testing.TB, db *store.DB) {
	t.Helper()
	for {
		n, err := db.RollupEventCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// TestExportReadsEveryEventInChunks exports more events than one chunk holds.
func TestExportReadsEveryEventInChunks(t *testing.T) {
	db := MustOpenDB(t)
	tn, _ := db.CreateTenant(context.Background(), "A")
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var evs []ev
	for i := range 4500 {
		evs = append(evs, ev{id: fmt.Sprintf("x%d", i), typ: "delivery", at: t0.Add(time.Duration(i/3) * time.Second)})
	}
	seed(t, db, tn.ID, evs...)
	seen := map[string]bool{}
	var prev time.Time
	err := db.ExportEmailEvents(context.Background(), store.EventFilter{TenantID: tn.ID, Limit: 5}, func(e *store.EmailEvent) error {
		if seen[e.EventID] {
			return fmt.Errorf("%s twice", e.EventID)
		}
		if !prev.IsZero() && e.Time.After(prev) {
			return fmt.Errorf("%s out of order", e.EventID)
		}
		seen[e.EventID], prev = true, e.Time
		return nil
	})
	if err != nil || len(seen) != len(evs) {
		t.Fatalf("exported %d of %d: %v", len(seen), len(evs), err)
	}
}

// TestReadEmailEventsBoundsAndReleases: a chunk stops at its row or byte bound (at least one
// event), says whether more may follow, and is read with its rows closed: no read connection is
// in use once it returns, nor while an export hands events on.
func TestReadEmailEventsBoundsAndReleases(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, _ := db.CreateTenant(ctx, "A")
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var evs []ev
	for i := range 50 {
		evs = append(evs, ev{id: fmt.Sprintf("r%02d", i), typ: "delivery", at: t0.Add(time.Duration(i) * time.Second)})
	}
	seed(t, db, tn.ID, evs...)
	f := store.EventFilter{TenantID: tn.ID}
	var c store.EventChunk
	read := func(limit, maxBytes int) (got []string, more bool) {
		t.Helper()
		f.Limit = limit
		more, err := db.ReadEmailEvents(ctx, f, maxBytes, &c)
		if err != nil {
			t.Fatal(err)
		}
		if n := db.Reader().Stats().InUse; n != 0 {
			t.Fatalf("%d read connections in use after the chunk was read", n)
		}
		for _, e := range c.Events {
			var body struct {
				EventID string `json:"event_id"`
			}
			if json.Unmarshal(e.Body, &body) != nil || body.EventID != e.EventID {
				t.Fatalf("event %s has the body %s", e.EventID, e.Body)
			}
			got = append(got, e.EventID)
		}
		return got, more
	}

	if got, more := read(20, 0); len(got) != 20 || got[0] != "r49" || !more {
		t.Fatalf("20 rows: %v (more %v)", got, more)
	}
	if got, more := read(100, 0); len(got) != 50 || more {
		t.Fatalf("all rows: %d (more %v)", len(got), more)
	}
	bodyLen := len(c.Events[0].Body)
	if got, more := read(100, 3*bodyLen-1); len(got) != 3 || !more || c.Bytes() < 3*bodyLen-1 {
		t.Fatalf("byte bound of about three bodies: %v (more %v, %d bytes)", got, more, c.Bytes())
	}
	// The byte bound never stops a chunk before its first event; following the cursor one
	// event at a time reads every event once, and the last chunk says there is no more.
	var all []string
	f.BeforeTime, f.BeforeID = time.Time{}, 0
	for more := true; more; {
		var got []string
		if got, more = read(100, 1); len(got) > 1 || more && len(got) != 1 {
			t.Fatalf("byte bound of 1: %v (more %v)", got, more)
		}
		all = append(all, got...)
		if len(got) > 0 {
			f.BeforeTime, f.BeforeID = c.Events[0].Time, c.Events[0].ID
		}
	}
	if len(all) != 50 || all[0] != "r49" || all[49] != "r00" || len(slices.Compact(slices.Clone(all))) != 50 {
		t.Fatalf("one by one: %v", all)
	}

	// An export hands on each event with no connection held.
	n := 0
	err := db.ExportEmailEvents(ctx, store.EventFilter{TenantID: tn.ID}, func(e *store.EmailEvent) error {
		if in := db.Reader().Stats().InUse; in != 0 {
			return fmt.Errorf("%d read connections in use while %s is handed on", in, e.EventID)
		}
		n++
		return nil
	})
	if err != nil || n != 50 {
		t.Fatalf("exported %d: %v", n, err)
	}
}
