package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// sparkpostFeed posts webhook batches to a source of its own and lets the real processor store
// them, so the events read back are exactly what a webhook leaves in the store.
type sparkpostFeed struct {
	app   *TestApp
	hook  string
	auth  string
	proc  *source.Processor
	batch int
}

func (a *TestApp) feed(token, tenantID string) *sparkpostFeed {
	src := a.createSource(token, tenantID, `{"name": "feed"}`)
	return &sparkpostFeed{app: a, hook: "/hooks/sparkpost/" + src.ID, auth: basicAuth(src.Credentials.Username, src.Credentials.Password),
		proc: a.App.Processor} // driven by the test: the app is not started
}

// post stores the events (inner objects of message_event elements unless they carry msys).
func (f *sparkpostFeed) post(events ...string) {
	f.app.t.Helper()
	elems := make([]string, len(events))
	for i, e := range events {
		if strings.HasPrefix(e, `{"msys"`) {
			elems[i] = e
		} else {
			elems[i] = `{"msys":{"message_event":` + e + `}}`
		}
	}
	f.batch++
	status, body, _ := f.app.Do("POST", f.hook, "", "["+strings.Join(elems, ",")+"]",
		"Authorization", f.auth, "X-MessageSystems-Batch-ID", "feed-"+strconv.Itoa(f.batch))
	if status != 200 {
		f.app.t.Fatalf("hook: %d %s", status, body)
	}
	if _, err := f.proc.ProcessOnce(context.Background()); err != nil {
		f.app.t.Fatal(err)
	}
}

// spEvent is a SparkPost event body with the given fields (timestamp as Unix seconds).
func spEvent(id, typ string, at time.Time, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"type":%q,"event_id":%q,"timestamp":"%d"`, typ, id, at.Unix())
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, `,%q:%s`, fields[i], fields[i+1])
	}
	return b.String() + "}"
}

type eventsPage struct {
	Results []struct {
		EventID     string `json:"event_id"`
		Type        string
		Class       string
		Timestamp   string
		Switchboard struct {
			Status    string
			MessageID *string `json:"message_id"`
		}
	}
	TotalCount int `json:"total_count"`
	Links      struct{ Next string }
}

func (a *TestApp) events(token, path string) eventsPage {
	a.t.Helper()
	status, body, _ := a.Do("GET", path, token, nil)
	if status != 200 {
		a.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var p eventsPage
	if err := json.Unmarshal(body, &p); err != nil {
		a.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return p
}

func (p eventsPage) ids() []string {
	var out []string
	for _, r := range p.Results {
		out = append(out, r.EventID)
	}
	return out
}

func TestEmailEventsSearch(t *testing.T) {
	app := NewTestApp(t)
	a, b := app.Tenant("A"), app.Tenant("B")
	ta, tb := app.TenantToken(a), app.TenantToken(b)
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	app.feed(ta, a.ID).post(
		spEvent("e1", "injection", at(0), "rcpt_to", `"ada@example.com"`, "campaign_id", `"spring-sale"`, "template_id", `"tpl-1"`, "transmission_id", `"tx1"`, "message_id", `"m1"`, "subaccount_id", "0"),
		spEvent("e2", "delivery", at(1), "rcpt_to", `"ada@example.com"`, "campaign_id", `"spring-sale"`, "template_id", `"tpl-1"`, "transmission_id", `"tx1"`, "message_id", `"m1"`, "subaccount_id", "0"),
		spEvent("e3", "bounce", at(2), "rcpt_to", `"bob@example.com"`, "campaign_id", `"spring-sale"`, "template_id", `"tpl-2"`, "transmission_id", `"tx1"`, "message_id", `"m2"`, "subaccount_id", "0", "bounce_class", `"10"`),
		spEvent("e4", "delivery", at(3), "rcpt_to", `"cy@example.com"`, "campaign_id", `"summer"`, "template_id", `"tpl-2"`, "transmission_id", `"tx2"`, "message_id", `"m3"`, "subaccount_id", "7"),
		`{"msys":{"track_event":`+spEvent("e5", "click", at(4), "rcpt_to", `"cy@example.com"`, "campaign_id", `"summer"`, "template_id", `"tpl-2"`, "transmission_id", `"tx2"`, "message_id", `"m3"`, "subaccount_id", "7", "target_link_url", `"https://example.com/?a=1,b=2"`)+`}}`,
	)
	app.feed(tb, b.ID).post(spEvent("b1", "delivery", at(1), "rcpt_to", `"ada@example.com"`, "campaign_id", `"spring-sale"`))
	base := "/api/v1/tenants/" + a.ID + "/email-events"

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"e5", "e4", "e3", "e2", "e1"}},
		{"events=delivery,bounce", []string{"e4", "e3", "e2"}},
		{"events=delivery&events=click", []string{"e5", "e4", "e2"}},
		{"recipients=ada@example.com", []string{"e2", "e1"}},
		{"campaigns=summer", []string{"e5", "e4"}},
		{"campaigns=spring*", []string{"e3", "e2", "e1"}},
		{"templates=tpl-2", []string{"e5", "e4", "e3"}},
		{"transmissions=tx2", []string{"e5", "e4"}},
		{"transmission_ids=tx2", []string{"e5", "e4"}},
		{"messages=m1,m2", []string{"e3", "e2", "e1"}},
		{"message_ids=m3", []string{"e5", "e4"}},
		{"subaccounts=7", []string{"e5", "e4"}},
		{"bounce_classes=10", []string{"e3"}},
		{"event_ids=e1,e5,b1", []string{"e5", "e1"}},
		{"from=2024-05-01T12:03:00Z", []string{"e5", "e4"}},
		{"to=2024-05-01T12:01", []string{"e1"}},
		{"from=2024-05-01T14:01&to=2024-05-01T14:03&timezone=Europe/Berlin", []string{"e3", "e2"}},
		{"campaigns=summer&events=click&from=2024-05-01", []string{"e5"}},
		{"recipients=ada@example.com%3Bcy@example.com&delimiter=%3B", []string{"e5", "e4", "e2", "e1"}},
		{"recipients=" + url.QueryEscape("x' OR 1=1 --"), nil},
	} {
		t.Run(c.query, func(t *testing.T) {
			p := app.events(ta, base+"?"+c.query)
			if !slices.Equal(p.ids(), c.want) || p.TotalCount != len(c.want) || p.Links.Next != "" {
				t.Fatalf("got %v (total %d, next %q), want %v", p.ids(), p.TotalCount, p.Links.Next, c.want)
			}
		})
	}

	// The result shape: the event's own fields, type, class, ISO-8601 timestamp, switchboard.
	status, body, _ := app.Do("GET", base+"?event_ids=e5", ta, nil)
	var raw struct{ Results []map[string]any }
	if status != 200 || json.Unmarshal(body, &raw) != nil || len(raw.Results) != 1 {
		t.Fatalf("e5: %d %s", status, body)
	}
	r := raw.Results[0]
	sw, _ := r["switchboard"].(map[string]any)
	if r["type"] != "click" || r["class"] != "track" || r["timestamp"] != "2024-05-01T12:04:00.000Z" || r["subaccount_id"] != float64(7) ||
		r["target_link_url"] != "https://example.com/?a=1,b=2" || sw == nil || sw["status"] != "pending" || sw["delivered_at"] != nil ||
		!strings.HasPrefix(fmt.Sprint(sw["message_id"]), "sp-") {
		t.Fatalf("e5 as shown: %s", body)
	}

	for _, sc := range []Scenario{
		{Name: "unknown filter", Method: "GET", URL: base + "?campaign=x", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"campaign: unknown parameter", "campaigns"}},
		{Name: "bad from", Method: "GET", URL: base + "?from=yesterday", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"from:"}},
		{Name: "bad to", Method: "GET", URL: base + "?to=2024-13-01", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"to:"}},
		{Name: "to before from", Method: "GET", URL: base + "?from=2024-05-02&to=2024-05-01", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"to: must be after from"}},
		{Name: "bad time zone", Method: "GET", URL: base + "?timezone=Mars/Olympus", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"timezone:"}},
		{Name: "Local is not a zone name", Method: "GET", URL: base + "?timezone=Local", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"timezone:"}},
		{Name: "path as zone", Method: "GET", URL: base + "?timezone=" + url.QueryEscape("../../etc/passwd"), Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"timezone:"}},
		{Name: "per_page 0", Method: "GET", URL: base + "?per_page=0", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"per_page:"}},
		{Name: "per_page too big", Method: "GET", URL: base + "?per_page=10001", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"per_page:"}},
		{Name: "per_page not a number", Method: "GET", URL: base + "?per_page=many", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"per_page:"}},
		{Name: "unknown event type", Method: "GET", URL: base + "?events=deliverd", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"events:", `\"deliverd\"`}},
		{Name: "bad bounce class", Method: "GET", URL: base + "?bounce_classes=hard", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"bounce_classes:"}},
		{Name: "bad subaccount", Method: "GET", URL: base + "?subaccounts=-1", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"subaccounts:"}},
		{Name: "bad cursor", Method: "GET", URL: base + "?cursor=zzz", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"cursor:"}},
		{Name: "raw semicolon", Method: "GET", URL: base + "?recipients=a@example.com;b@example.com", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"%3B"}},
		{Name: "bad delimiter", Method: "GET", URL: base + "?delimiter=ab", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"delimiter:"}},
		{Name: "other tenant", Method: "GET", URL: base, Token: tb, ExpectedStatus: 404},
		{Name: "no token", Method: "GET", URL: base, ExpectedStatus: 401},
		{Name: "csv unknown field", Method: "GET", URL: base + ".csv?fields=rcpt_to,recipient", Token: ta, ExpectedStatus: 400,
			ExpectedContent: []string{`fields: \"recipient\" is not a field`, "rcpt_to", "switchboard.status", "rcpt_meta."}},
		{Name: "csv has no pages", Method: "GET", URL: base + ".csv?per_page=10", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"per_page:"}},
		{Name: "csv bad time", Method: "GET", URL: base + ".csv?from=now", Token: ta, ExpectedStatus: 400, ExpectedContent: []string{"from:"}},
	} {
		sc.Run(t, app)
	}
}

// TestEmailEventsPaging follows links.next to the end: every event once, in order, the same
// total on every page, no next link on the last.
func TestEmailEventsPaging(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	feed := app.feed(ta, a.ID)
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var evs []string
	for i := range 25 {
		evs = append(evs, spEvent(fmt.Sprintf("p%02d", i), "delivery", t0.Add(time.Duration(i/2)*time.Second)))
	}
	feed.post(evs...)
	next := "/api/v1/tenants/" + a.ID + "/email-events?per_page=4&events=delivery"
	var got []string
	for pages := 0; next != ""; pages++ {
		if pages > 10 {
			t.Fatal("links.next never ends")
		}
		p := app.events(ta, next)
		if p.TotalCount != 25+pages { // the late events below count too
			t.Fatalf("total_count %d on page %d", p.TotalCount, pages)
		}
		got = append(got, p.ids()...)
		next = p.Links.Next
		if next != "" && (!strings.Contains(next, "per_page=4") || !strings.Contains(next, "events=delivery") || !strings.HasPrefix(next, "/api/v1/")) {
			t.Fatalf("links.next %q lost the query", next)
		}
		// An event arriving between pages is newer than the cursor: no page shifts.
		feed.post(spEvent(fmt.Sprintf("late%d", pages), "delivery", t0.Add(time.Hour)))
	}
	if len(got) != 25 || got[0] != "p24" || got[24] != "p00" {
		t.Fatalf("paged through %v", got)
	}
}

// TestEmailEventsTimeZoneAcrossDST reads local from/to across daylight-saving changes: a local
// day in Europe/Berlin in spring has 23 hours, one in America/New_York in autumn 25.
func TestEmailEventsTimeZoneAcrossDST(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	// Berlin: 2024-03-31 02:00 CET became 03:00 CEST (01:00Z). New York: 2024-11-03 02:00 EDT
	// became 01:00 EST (06:00Z).
	app.feed(ta, a.ID).post(
		spEvent("berlin-before-midnight", "delivery", utc("2024-03-30T22:59:59Z")),
		spEvent("berlin-midnight", "delivery", utc("2024-03-30T23:00:00Z")),
		spEvent("berlin-01:59-cet", "delivery", utc("2024-03-31T00:59:59Z")),
		spEvent("berlin-03:00-cest", "delivery", utc("2024-03-31T01:00:00Z")),
		spEvent("berlin-23:59-cest", "delivery", utc("2024-03-31T21:59:59Z")),
		spEvent("berlin-next-day", "delivery", utc("2024-03-31T22:00:00Z")),
		spEvent("ny-before", "open", utc("2024-11-03T03:59:59Z")),
		spEvent("ny-midnight-edt", "open", utc("2024-11-03T04:00:00Z")),
		spEvent("ny-01:30-edt", "open", utc("2024-11-03T05:30:00Z")),
		spEvent("ny-01:30-est", "open", utc("2024-11-03T06:30:00Z")),
		spEvent("ny-23:59-est", "open", utc("2024-11-04T04:59:59Z")),
		spEvent("ny-next-day", "open", utc("2024-11-04T05:00:00Z")),
	)
	base := "/api/v1/tenants/" + a.ID + "/email-events?"
	p := app.events(ta, base+"events=delivery&from=2024-03-31T00:00&to=2024-04-01T00:00&timezone=Europe/Berlin")
	if want := []string{"berlin-23:59-cest", "berlin-03:00-cest", "berlin-01:59-cet", "berlin-midnight"}; !slices.Equal(p.ids(), want) {
		t.Fatalf("Berlin's 23-hour day: %v, want %v", p.ids(), want)
	}
	p = app.events(ta, base+"events=open&from=2024-11-03&to=2024-11-04&timezone=America/New_York")
	if want := []string{"ny-23:59-est", "ny-01:30-est", "ny-01:30-edt", "ny-midnight-edt"}; !slices.Equal(p.ids(), want) {
		t.Fatalf("New York's 25-hour day: %v, want %v", p.ids(), want)
	}
	// An explicit offset wins over timezone.
	p = app.events(ta, base+"events=delivery&from=2024-03-31T03:00:00%2B02:00&timezone=America/New_York")
	if want := []string{"berlin-next-day", "berlin-23:59-cest", "berlin-03:00-cest"}; !slices.Equal(p.ids(), want) {
		t.Fatalf("offset and timezone: %v, want %v", p.ids(), want)
	}
	// CSV times are shown in the query's zone, with the offset of that moment.
	status, body, _ := app.Do("GET", "/api/v1/tenants/"+a.ID+"/email-events.csv?fields=event_id,timestamp&events=delivery&timezone=Europe/Berlin&from=2024-03-31T00:00&to=2024-03-31T04:00", ta, nil)
	want := "event_id,timestamp\nberlin-03:00-cest,2024-03-31T03:00:00.000+02:00\nberlin-01:59-cet,2024-03-31T01:59:59.000+01:00\nberlin-midnight,2024-03-31T00:00:00.000+01:00\n"
	if status != 200 || string(body) != want {
		t.Fatalf("CSV in Berlin time: %d\n%s\nwant\n%s", status, body, want)
	}
}

func TestEmailEventsCSV(t *testing.T) {
	app := NewTestApp(t)
	a := app.Tenant("A")
	ta := app.TenantToken(a)
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	app.feed(ta, a.ID).post(
		spEvent("c1", "delivery", t0, "rcpt_to", `"ada@example.com"`, "subject", `"Hello, \"world\"\nline two — ünïcødé 🎉"`,
			"rcpt_meta", `{"user_id": "u-1", "tier": {"level": 2}}`, "rcpt_tags", `["a", "b,c"]`, "geo_ip", `{"city": "Köln"}`,
			"num_retries", `"0"`, "click_tracking", "true", "bounce_class", "null"),
		spEvent("c2", "open", t0.Add(time.Minute), "rcpt_to", `"bob@example.com"`),
	)
	fields := "event_id,type,class,rcpt_to,subject,rcpt_meta.user_id,rcpt_meta.tier,rcpt_tags,geo_ip.city,num_retries,click_tracking,bounce_class,template_id,switchboard.status,timestamp"
	status, body, hdr := app.Do("GET", "/api/v1/tenants/"+a.ID+"/email-events.csv?fields="+fields, ta, nil)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || hdr.Get("X-Total-Count") != "2" {
		t.Fatalf("csv: %d %v %s", status, hdr, body)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, body)
	}
	want := [][]string{
		strings.Split(fields, ","),
		{"c2", "open", "message", "bob@example.com", "", "", "", "", "", "", "", "", "", "pending", "2024-05-01T12:01:00.000Z"},
		{"c1", "delivery", "message", "ada@example.com", "Hello, \"world\"\nline two — ünïcødé 🎉", "u-1", `{"level":2}`, `["a","b,c"]`,
			"Köln", "0", "true", "", "", "pending", "2024-05-01T12:00:00.000Z"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal[[]string]) {
		t.Fatalf("rows:\n%q\nwant\n%q", rows, want)
	}
	// The default columns.
	status, body, _ = app.Do("GET", "/api/v1/tenants/"+a.ID+"/email-events.csv?events=open", ta, nil)
	if status != 200 || !strings.HasPrefix(string(body), strings.Join(sparkpost.DefaultCSVFields, ",")+"\n2024-05-01T12:01:00.000Z,open,c2,bob@example.com,") {
		t.Fatalf("default columns: %d\n%s", status, body)
	}
}

// TestCSVExportMemoryIsFlat exports 100,000 events and checks that the live heap (measured after
// a collection every 5,000 rows) does not grow with the export, as a buffered or leaking export
// would by about the output's size, and that each event costs as many allocations as in a ten
// times smaller export.
func TestCSVExportMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 100,000 events")
	}
	app := NewTestApp(t)
	tn := app.Tenant("A")
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	const n = 100_000
	// The export reads the time index only; without the filter indexes seeding is four times
	// quicker (it matters under -race, where SQLite's code is instrumented).
	err := app.DB.Write(context.Background(), func(tx *sql.Tx) error {
		for _, idx := range []string{"recipient", "type", "message", "campaign", "template", "transmission", "subaccount", "bounce_class"} {
			if _, err := tx.Exec(`DROP INDEX email_events_` + idx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	insertEvents(t, app.DB, tn.ID, n, t0, time.Second)
	eq, err := sparkpost.ParseEventQuery(url.Values{"fields": {"timestamp,type,event_id,rcpt_to,message_id,campaign_id,subject,rcpt_meta.user_id,user_agent,switchboard.status"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	eq.Filter.TenantID = tn.ID

	export := func(to time.Time) (rows int, out int64, allocs uint64, peak uint64) {
		eq.Filter.To = to
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var cw countingWriter
		var ms runtime.MemStats
		rows, err := sparkpost.WriteEventsCSV(context.Background(), app.DB, eq, &cw, func(int) {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		})
		if err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		return rows, cw.n, ms.Mallocs - before.Mallocs, max(peak, before.HeapAlloc) - before.HeapAlloc
	}
	smallRows, _, smallAllocs, _ := export(t0.Add(n / 10 * time.Second))
	rows, out, allocs, growth := export(time.Time{})
	if smallRows != n/10 || rows != n {
		t.Fatalf("exported %d and %d rows", smallRows, rows)
	}
	perSmall, perAll := float64(smallAllocs)/float64(smallRows), float64(allocs)/float64(rows)
	t.Logf("%d rows, %.1f MB of CSV; live heap grew by %.2f MB at most; %.1f allocations per event (%.1f for %d)",
		rows, float64(out)/1e6, float64(growth)/1e6, perAll, perSmall, smallRows)
	if growth > 2<<20 || growth > uint64(out)/8 {
		t.Errorf("the live heap grew by %d bytes during a %d-byte export", growth, out)
	}
	if perAll > perSmall*1.2+1 {
		t.Errorf("allocations per event grow with the export: %.1f for %d, %.1f for %d", perSmall, smallRows, perAll, rows)
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// insertEvents stores n realistic events for a tenant, one every step from start, with one
// prepared multi-row INSERT in large transactions (far faster than the processor's path, which
// the other tests take; these tests and benchmarks are about reading). Every message has five
// events (injection, delivery, open, click, bounce); messages cycle through 100,000 recipients,
// 50 campaigns and 20 templates.
func insertEvents(tb testing.TB, db *store.DB, tenantID string, n int, start time.Time, step time.Duration) {
	tb.Helper()
	const perStmt, perTx = 100, 50_000
	types := []string{"injection", "delivery", "open", "click", "bounce"}
	wrappers := []string{"message_event", "message_event", "track_event", "track_event", "message_event"}
	stmtSQL := `INSERT INTO email_events (tenant_id, source_id, inbox_id, event_id, type, wrapper, ts, recipient, message_id,
		campaign_id, template_id, transmission_id, subaccount_id, bounce_class, body, status) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, 'src_bench', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, '0', ?, ?, 'not_sent'), ", perStmt), ", ")
	var body []byte
	for done := 0; done < n; {
		err := db.Write(context.Background(), func(tx *sql.Tx) error {
			stmt, err := tx.Prepare(stmtSQL)
			if err != nil {
				return err
			}
			defer stmt.Close()
			args := make([]any, 0, perStmt*12)
			for end := min(done+perTx, n); done < end; done += perStmt {
				args = args[:0]
				for i := done; i < done+perStmt; i++ {
					k, m := i%len(types), i/len(types)
					ts := start.Add(time.Duration(i) * step)
					rcpt := "user" + strconv.Itoa(m%100_000) + "@example.com"
					campaign := "campaign-" + strconv.Itoa(m%50)
					msg := "msg" + strconv.Itoa(m)
					var bcl any
					if types[k] == "bounce" {
						bcl = "10"
					}
					body = appendBenchEvent(body[:0], i, m, types[k], ts, rcpt, campaign, msg)
					args = append(args, tenantID, "ev"+strconv.Itoa(i), types[k], wrappers[k], ts.UnixMilli(), rcpt, msg,
						campaign, "template-"+strconv.Itoa(m%20), "tx"+strconv.Itoa(m/1000), bcl, string(body))
				}
				if _, err := stmt.Exec(args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// appendBenchEvent writes a SparkPost event of the usual size (about 1 KB) and fields.
func appendBenchEvent(b []byte, i, m int, typ string, ts time.Time, rcpt, campaign, msg string) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","event_id":"ev`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","timestamp":"`...)
	b = strconv.AppendInt(b, ts.Unix(), 10)
	b = append(b, `","rcpt_to":"`...)
	b = append(b, rcpt...)
	b = append(b, `","raw_rcpt_to":"`...)
	b = append(b, rcpt...)
	b = append(b, `","message_id":"`...)
	b = append(b, msg...)
	b = append(b, `","campaign_id":"`...)
	b = append(b, campaign...)
	b = append(b, `","template_id":"template-`...)
	b = strconv.AppendInt(b, int64(m%20), 10)
	b = append(b, `","template_version":"3","transmission_id":"tx`...)
	b = strconv.AppendInt(b, int64(m/1000), 10)
	b = append(b, `","subaccount_id":0,"customer_id":"1","friendly_from":"news@example.com","msg_from":"msprvs1=abc@bounces.example.com",`...)
	b = append(b, `"subject":"Spring sale: 20% off, this week only","ip_pool":"default","sending_ip":"192.0.2.10","routing_domain":"example.com",`...)
	b = append(b, `"recipient_domain":"example.com","sending_domain":"example.com","msg_size":"28931","queue_time":"812","num_retries":"0",`...)
	b = append(b, `"delv_method":"esmtp","recv_method":"rest","rcpt_type":"to","click_tracking":true,"open_tracking":true,"initial_pixel":true,`...)
	b = append(b, `"injection_time":"`...)
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","rcpt_meta":{"user_id":"u`...)
	b = strconv.AppendInt(b, int64(m%100_000), 10)
	b = append(b, `","plan":"pro"},"rcpt_tags":["newsletter","spring"]`...)
	switch typ {
	case "open", "click":
		b = append(b, `,"ip_address":"198.51.100.7","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15","geo_ip":{"country":"DE","region":"NW","city":"Köln","latitude":50.9375,"longitude":6.9603}`...)
		if typ == "click" {
			b = append(b, `,"target_link_url":"https://example.com/spring?utm_source=newsletter","target_link_name":"cta"`...)
		}
	case "bounce":
		b = append(b, `,"bounce_class":"10","error_code":"550","reason":"550 5.1.1 user unknown","raw_reason":"550 5.1.1 <x@example.com>: user unknown"`...)
	}
	return append(b, '}')
}
