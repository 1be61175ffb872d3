package server_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/server"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// newEventsApp is NewTestApp with the email-events limits given.
func newEventsApp(tb testing.TB, limits server.EventReadLimits) *TestApp {
	tb.Helper()
	return NewTestApp(tb, func(c *server.Config) { c.EventReads = limits })
}

// insertBigEvents stores n delivery events for a tenant, one a second from start, each with a
// subject of size bytes; their ids are prefix0, prefix1, ….
func insertBigEvents(tb testing.TB, db *store.DB, tenantID, prefix string, n, size int, start time.Time) {
	tb.Helper()
	subject := strings.Repeat("x", size)
	for done := 0; done < n; {
		err := db.Write(context.Background(), func(tx *sql.Tx) error {
			stmt, err := tx.Prepare(`INSERT INTO email_events (tenant_id, source_id, inbox_id, event_id, type, wrapper, ts, recipient, body, status)
				VALUES (?, 'src_big', 0, ?, 'delivery', 'message_event', ?, 'big@example.com', ?, 'not_sent')`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for end := min(done+500, n); done < end; done++ {
				id := prefix + strconv.Itoa(done)
				ts := start.Add(time.Duration(done) * time.Second)
				body := `{"type":"delivery","event_id":"` + id + `","timestamp":"` + strconv.FormatInt(ts.Unix(), 10) +
					`","rcpt_to":"big@example.com","subject":"` + subject + `"}`
				if _, err := stmt.Exec(tenantID, id, ts.UnixMilli(), body); err != nil {
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

// readsInFlight reads the email-events reads running now from /metrics.
func (a *TestApp) readsInFlight() int {
	a.t.Helper()
	status, body, _ := a.Do("GET", "/metrics", "", nil)
	if status != 200 {
		a.t.Fatalf("/metrics: %d", status)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "switchboard_email_event_reads_in_flight "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	a.t.Fatal("/metrics has no switchboard_email_event_reads_in_flight")
	return 0
}

// stalledGet sends GET path on a connection of its own and then reads nothing, as a client
// that stopped reading; the small receive buffer makes the server's writes block sooner.
func stalledGet(t *testing.T, app *TestApp, path, token string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", app.HTTP.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(256 << 10)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: switchboard.test\r\nAuthorization: Bearer %s\r\n\r\n", path, token)
	return conn
}

// timedGet is app.Do that also says how long the answer took.
func timedGet(app *TestApp, path, token string) (int, []byte, http.Header, time.Duration) {
	start := time.Now()
	status, body, hdr := app.Do("GET", path, token, nil)
	return status, body, hdr, time.Since(start)
}

// TestCSVExportStalledClientsHoldNoConnection: four CSV exports (as many as the store has read
// connections) and a JSON page whose clients stop reading hold no database connection while
// they wait, so /readyz, the admin API and hooks answer at once; and each stalled answer is cut
// off by the write deadline instead of being waited on.
func TestCSVExportStalledClientsHoldNoConnection(t *testing.T) {
	const writeTimeout = 2 * time.Second
	// No cap gets in the way here: what is shown is that a stalled export holds nothing.
	app := newEventsApp(t, server.EventReadLimits{PerTenant: 8, Global: 8, WriteTimeout: writeTimeout})
	app.Start() // /readyz reports the workers too
	if pool := app.DB.Reader().Stats().MaxOpenConnections; pool > 4 {
		t.Logf("the read pool has %d connections; the test stalls 4 exports", pool)
	}
	a, b := app.Tenant("A"), app.Tenant("B")
	ta, tb := app.TenantToken(a), app.TenantToken(b)
	src := app.createSource(tb, b.ID, `{"name": "hooks"}`)
	hookAuth := basicAuth(src.Credentials.Username, src.Credentials.Password)
	const events, size = 2000, 12_500 // 25 MB of CSV: far more than the socket buffers hold
	insertBigEvents(t, app.DB, a.ID, "big", events, size, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))

	path := "/api/v1/tenants/" + a.ID + "/email-events.csv?fields=event_id,subject"
	var conns []net.Conn
	for range 4 {
		conns = append(conns, stalledGet(t, app, path, ta))
	}
	// And a JSON page (8 MiB, also more than the buffers) whose client stops reading.
	conns = append(conns, stalledGet(t, app, "/api/v1/tenants/"+a.ID+"/email-events?per_page=10000", ta))
	stalled, checks, hookN := false, 0, 0
	var stalledAt time.Time
	waitFor(t, "the stalled exports to be cut off", func() bool {
		inFlight, inUse := app.readsInFlight(), app.DB.Reader().Stats().InUse
		if inFlight == len(conns) && inUse == 0 && !stalled {
			stalled, stalledAt = true, time.Now()
		}
		if stalled && inFlight == 0 {
			return true
		}
		// Whatever the exports are doing, the rest of the API answers, and promptly.
		if status, body, _, took := timedGet(app, "/readyz", ""); status != 200 || took > 2*time.Second {
			t.Fatalf("/readyz while exports stall: %d in %s: %s", status, took, body)
		}
		if status, body, _, took := timedGet(app, "/api/v1/tenants/"+b.ID, tb); status != 200 || took > 2*time.Second {
			t.Fatalf("admin API while exports stall: %d in %s: %s", status, took, body)
		}
		hookN++
		status, body, _ := app.Do("POST", "/hooks/sparkpost/"+src.ID, "", `[{"msys":{"message_event":`+spEvent("h"+strconv.Itoa(hookN), "delivery", time.Now())+`}}]`,
			"Authorization", hookAuth, "X-MessageSystems-Batch-ID", "stall-"+strconv.Itoa(hookN))
		if status != 200 {
			t.Fatalf("hook while exports stall: %d %s", status, body)
		}
		if stalled {
			checks++
		}
		return false
	})
	cutAfter := time.Since(stalledAt)
	t.Logf("4 exports and a page stalled with no read connection in use; %d rounds of /readyz, admin and hook calls answered meanwhile; all cut off %s after",
		checks, cutAfter.Round(time.Millisecond))
	if checks == 0 {
		t.Error("no call was made while every export stalled")
	}

	// Each client, reading now, gets the start of the file and then the end of the connection:
	// the export was cut off, not finished and not still waiting.
	full := sparkpost.MaxPageBytes // the JSON page; the CSV files are three times larger
	for i, conn := range conns {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		got, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("answer %d: the connection is still open after a minute", i)
		}
		if got == 0 || got >= int64(full) {
			t.Fatalf("answer %d: read %d bytes of more than %d; want a cut-off answer", i, got, full)
		}
	}
	if !strings.Contains(app.Logs.String(), "the client stopped reading") {
		t.Error("the cut-off exports were not logged")
	}
}

// TestEmailEventsReadCaps: a tenant runs at most PerTenant email-events reads at once and the
// server at most Global; past either, 429 with Retry-After and a message saying which cap.
func TestEmailEventsReadCaps(t *testing.T) {
	// PerTenant: the default, 2. The workers run: /readyz reports them too.
	app := newEventsApp(t, server.EventReadLimits{Global: 3})
	app.Start()
	a, b, c := app.Tenant("A"), app.Tenant("B"), app.Tenant("C")
	ta, tb, tc := app.TenantToken(a), app.TenantToken(b), app.TenantToken(c)
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	insertBigEvents(t, app.DB, a.ID, "a", 2000, 12_500, t0)
	insertBigEvents(t, app.DB, b.ID, "b", 2000, 12_500, t0)
	csvOf := func(tid string) string { return "/api/v1/tenants/" + tid + "/email-events.csv?fields=event_id,subject" }
	pageOf := func(tid string) string { return "/api/v1/tenants/" + tid + "/email-events?per_page=10" }

	a1, a2 := stalledGet(t, app, csvOf(a.ID), ta), stalledGet(t, app, csvOf(a.ID), ta)
	waitFor(t, "two exports of A to run", func() bool { return app.readsInFlight() == 2 })
	for _, path := range []string{pageOf(a.ID), csvOf(a.ID)} {
		status, body, hdr := app.Do("GET", path, ta, nil)
		if status != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "this tenant already runs 2 email-events reads") ||
			!strings.Contains(string(body), `"code":"too_many_requests"`) {
			t.Fatalf("A's third read: %d (Retry-After %q) %s", status, hdr.Get("Retry-After"), body)
		}
	}
	// Another tenant is not held up by A's cap.
	if status, body, _ := app.Do("GET", pageOf(b.ID), tb, nil); status != 200 {
		t.Fatalf("B's page while A is at its cap: %d %s", status, body)
	}
	stalledGet(t, app, csvOf(b.ID), tb)
	waitFor(t, "three exports to run", func() bool { return app.readsInFlight() == 3 })
	status, body, hdr := app.Do("GET", pageOf(c.ID), tc, nil)
	if status != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "the server runs 3 email-events reads") {
		t.Fatalf("C's read with the server at its cap: %d (Retry-After %q) %s", status, hdr.Get("Retry-After"), body)
	}
	// The rest of the API is not capped.
	if status, body, _ := app.Do("GET", "/readyz", "", nil); status != 200 {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	if status, body, _ := app.Do("GET", "/api/v1/tenants/"+c.ID, tc, nil); status != 200 {
		t.Fatalf("admin API: %d %s", status, body)
	}

	// A's clients go away: their exports end at the next write, and A may read again.
	a1.Close()
	a2.Close()
	waitFor(t, "A's exports to end", func() bool { return app.readsInFlight() == 1 })
	for _, tc := range []struct{ path, token string }{{pageOf(a.ID), ta}, {pageOf(c.ID), tc}} {
		if status, body, _ := app.Do("GET", tc.path, tc.token, nil); status != 200 {
			t.Fatalf("GET %s after the exports ended: %d %s", tc.path, status, body)
		}
	}
}

// TestEmailEventsPageByteCap: per_page=10000 of 12.5 KB events would be a 25 MB answer; pages end
// before MaxPageBytes with links.next, and following the links gives every event once, in order,
// with the same total_count on every page.
func TestEmailEventsPageByteCap(t *testing.T) {
	app := NewTestApp(t)
	tn := app.Tenant("A")
	token := app.TenantToken(tn)
	const n = 2000
	insertBigEvents(t, app.DB, tn.ID, "e", n, 12_500, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))

	next := "/api/v1/tenants/" + tn.ID + "/email-events?per_page=10000&events=delivery"
	var ids []string
	pages := 0
	for ; next != ""; pages++ {
		if pages > n {
			t.Fatal("links.next never ends")
		}
		status, body, _ := app.Do("GET", next, token, nil)
		var p eventsPage
		if status != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("GET %s: %d %.300s", next, status, body)
		}
		if len(body) > sparkpost.MaxPageBytes+64<<10 {
			t.Fatalf("page %d is %d bytes, past the %d-byte cap", pages, len(body), sparkpost.MaxPageBytes)
		}
		if p.TotalCount != n || len(p.Results) == 0 {
			t.Fatalf("page %d: %d results, total_count %d", pages, len(p.Results), p.TotalCount)
		}
		if p.Links.Next != "" && !strings.Contains(p.Links.Next, "per_page=10000") {
			t.Fatalf("links.next %q lost per_page", p.Links.Next)
		}
		if p.Links.Next != "" && len(body) < sparkpost.MaxPageBytes/2 {
			t.Fatalf("page %d ended early at %d bytes", pages, len(body))
		}
		ids = append(ids, p.ids()...)
		next = p.Links.Next
	}
	if pages < 3 {
		t.Fatalf("%d pages; 25 MB of events should take at least 3", pages)
	}
	if len(ids) != n {
		t.Fatalf("%d events over %d pages, want %d", len(ids), pages, n)
	}
	for i, id := range ids {
		if want := "e" + strconv.Itoa(n-1-i); id != want {
			t.Fatalf("event %d is %s, want %s (newest first, none lost or repeated)", i, id, want)
		}
	}

	// An event larger than the cap still makes a page of its own: paging never stalls.
	small := newEventsApp(t, server.EventReadLimits{PageBytes: 32 << 10})
	tn = small.Tenant("A")
	token = small.TenantToken(tn)
	t1 := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	insertBigEvents(t, small.DB, tn.ID, "s", 3, 1000, t1)
	insertBigEvents(t, small.DB, tn.ID, "huge", 1, 100_000, t1.Add(time.Hour))
	next = "/api/v1/tenants/" + tn.ID + "/email-events"
	var sizes []int
	ids = nil
	for next != "" && len(sizes) < 10 {
		p := small.events(token, next)
		sizes = append(sizes, len(p.Results))
		ids = append(ids, p.ids()...)
		next = p.Links.Next
	}
	if fmt.Sprint(sizes) != "[1 3]" || strings.Join(ids, ",") != "huge0,s2,s1,s0" {
		t.Fatalf("pages of %v events: %v; want the 100 KB event alone, then the other three", sizes, ids)
	}
}

// procStatus reads a size field (VmRSS, VmHWM) of /proc/self/status, in MiB.
func procStatus(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// TestEmailEventsLargePagesMemory asks for four pages of per_page=10000 at once, of events of
// 12.5 KB (125 MB of events: before pages were capped in bytes and streamed, each answer was
// 125 MB built in memory and the four took the heap to about 900 MiB), and checks that the heap
// grows by less than two page caps per page.
func TestEmailEventsLargePagesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 125 MB of events")
	}
	app := newEventsApp(t, server.EventReadLimits{PerTenant: 4, Global: 4}) // all four run at once
	tn := app.Tenant("A")
	token := app.TenantToken(tn)
	insertBigEvents(t, app.DB, tn.ID, "big", 10_000, 12_500, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore, anonBefore := procStatus("VmRSS"), procStatus("RssAnon")
	var peakHeap, peakRSS, peakAnon atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap.Store(max(peakHeap.Load(), ms.HeapInuse))
			peakRSS.Store(max(peakRSS.Load(), uint64(procStatus("VmRSS"))))
			peakAnon.Store(max(peakAnon.Load(), uint64(procStatus("RssAnon"))))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var wg sync.WaitGroup
	var answered atomic.Int64
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", app.HTTP.URL+"/api/v1/tenants/"+tn.ID+"/email-events?per_page=10000", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := app.HTTP.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			n, _ := io.Copy(io.Discard, resp.Body)
			answered.Add(n)
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := float64(peakHeap.Load()-min(peakHeap.Load(), before.HeapInuse)) / (1 << 20)
	t.Logf("4 pages of per_page=10000 (12.5 KB events): statuses %v, %.1f MB answered; allocated %.0f MiB; heap in use grew by %.0f MiB at most; RSS %.0f → peak %d MiB (anonymous %.0f → %d MiB)",
		statuses, float64(answered.Load())/1e6, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), growth, rssBefore, peakRSS.Load(), anonBefore, peakAnon.Load())
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("page %d: status %d", i, s)
		}
	}
	// Pages are streamed: a page costs a chunk of events and a write buffer, not its size.
	if limit := 4 * 2 * float64(sparkpost.MaxPageBytes) / (1 << 20); growth > limit {
		t.Errorf("the heap grew by %.0f MiB for four pages capped at %d MiB each", growth, sparkpost.MaxPageBytes>>20)
	}
}

// bigSparkPost serves GET /api/v1/events/message from a list of events, per_page of them from
// the offset in cursor, as SparkPost's Events API pages; it records the per_page asked for.
type bigSparkPost struct {
	*httptest.Server
	events        []string
	contentLength bool // say the page's size up front (otherwise the page comes chunked)

	mu      sync.Mutex
	perPage []int
}

func newBigSparkPost(t *testing.T, events []string, contentLength bool) *bigSparkPost {
	sp := &bigSparkPost{events: events, contentLength: contentLength}
	sp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		per, _ := strconv.Atoi(q.Get("per_page"))
		from, _ := strconv.Atoi(q.Get("cursor"))
		sp.mu.Lock()
		sp.perPage = append(sp.perPage, per)
		sp.mu.Unlock()
		to := min(from+per, len(sp.events))
		links := `{}`
		if to < len(sp.events) {
			q.Set("cursor", strconv.Itoa(to))
			links = `{"next":"/api/v1/events/message?` + q.Encode() + `"}`
		}
		body := `{"results":[` + strings.Join(sp.events[from:to], ",") + `],"total_count":` + strconv.Itoa(len(sp.events)) + `,"links":` + links + `}`
		if sp.contentLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(sp.Close)
	return sp
}

func (sp *bigSparkPost) asked() []int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]int(nil), sp.perPage...)
}

// TestBackfillPageCap: a back-fill page is capped like a webhook body (16 MiB). A larger page is
// a failed attempt that the job shows, and the next attempt asks for a quarter of the events,
// until the pages fit; an event that alone is too large fails the job, saying so.
func TestBackfillPageCap(t *testing.T) {
	rig := newBackfillRig(t)
	app := rig.app
	tid, token, src := rig.tenant("A")
	key := app.Secret("sp-api-key-pagecap")
	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	event := func(id string, size int) string {
		return fmt.Sprintf(`{"type":"delivery","event_id":%q,"timestamp":%q,"rcpt_to":"big@example.com","subject":%q}`,
			id, at.Format("2006-01-02T15:04:05.000Z"), strings.Repeat("x", size))
	}
	run := func(sp *bigSparkPost) jobOut {
		status, body, location := rig.start(token, tid, src.ID, map[string]any{"from": at.Add(-time.Hour).Format(time.RFC3339), "api_key": key, "base_url": sp.URL})
		if status != 202 {
			t.Fatalf("start: %d %s", status, body)
		}
		return rig.await(token, location)
	}

	// 300 events of 60 KB: 18 MB in one page, past the cap until per_page is 156.
	var events []string
	for i := range 300 {
		events = append(events, event("pc"+strconv.Itoa(i), 60_000))
	}
	sp := newBigSparkPost(t, events, false)
	j := run(sp)
	if j.Status != "done" || j.Fetched != 300 || j.Pages != 2 || j.Retries != 3 ||
		!strings.Contains(j.LastError, "per_page=625 is larger than 16 MiB") {
		t.Fatalf("job: %+v", j)
	}
	if got := fmt.Sprint(sp.asked()); got != "[10000 2500 625 156 156]" {
		t.Fatalf("per_page asked for: %s", got)
	}
	if p := app.events(token, "/api/v1/tenants/"+tid+"/email-events?per_page=1"); p.TotalCount != 300 {
		t.Fatalf("%d events stored, want 300", p.TotalCount)
	}

	// One event past the cap cannot be stored at any page size: the job fails and says why.
	sp = newBigSparkPost(t, []string{event("huge", 17<<20)}, true)
	j = run(sp)
	if j.Status != "failed" || j.Fetched != 0 || !strings.Contains(j.Error, "one event larger than 16 MiB") {
		t.Fatalf("job: %+v", j)
	}
	if got := fmt.Sprint(sp.asked()); got != "[10000 2500 625 156 39 9 2 1]" {
		t.Fatalf("per_page asked for: %s", got)
	}
}
