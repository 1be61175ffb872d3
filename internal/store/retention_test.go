package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// clock is a settable db.Now.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// storeBatch stores a raw batch received at the clock's time and its events (each queued for
// Segment when queued is true), as the hook and the processor do.
func storeBatch(t testing.TB, db *store.DB, tenantID, sourceID, batchID string, queued bool, evs ...ev) *store.InboxBatch {
	t.Helper()
	ctx := context.Background()
	b := &store.InboxBatch{TenantID: tenantID, SourceID: sourceID, BatchID: batchID, Body: []byte(`[]`)}
	if _, err := db.AddBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	pb := &store.ProcessedBatch{Batch: b, Target: "segment", MaxAge: 72 * time.Hour}
	for _, e := range evs {
		se := &store.EmailEvent{EventID: e.id, Type: e.typ, Wrapper: "message_event", Time: e.at, Recipient: e.rcpt,
			Body: []byte(`{"type":"` + e.typ + `","event_id":"` + e.id + `"}`), Status: store.EventNotSent}
		if queued {
			se.Status, se.SegmentMessageID, se.Payload = store.EventQueued, "sp-"+e.id, []byte(`{}`)
		}
		pb.Events = append(pb.Events, se)
	}
	if err := db.CommitProcessed(ctx, pb); err != nil {
		t.Fatal(err)
	}
	return b
}

// deliverAll marks every pending Segment delivery of a tenant delivered.
func deliverAll(t testing.TB, db *store.DB, tenantID string) {
	t.Helper()
	ds, err := db.ClaimDeliveries(context.Background(), "segment", tenantID, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	var outs []store.Outcome
	for _, d := range ds {
		outs = append(outs, store.Outcome{ID: d.ID, Delivered: true})
	}
	if _, _, err := db.FinishDeliveries(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
}

func newSource(t testing.TB, db *store.DB, tenantID string) string {
	t.Helper()
	src := &store.Source{ID: domain.NewID("src_"), TenantID: tenantID, Name: "s", Auth: "basic"}
	if err := db.CreateSource(context.Background(), src, domain.NewID("spu_"), "hash"); err != nil {
		t.Fatal(err)
	}
	return src.ID
}

func TestRetentionRemovesOldEventsAndTheirDeliveries(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := &clock{now: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
	db.Clock = clk.Now
	a, _ := db.CreateTenant(ctx, "A")
	b, _ := db.CreateTenant(ctx, "B")
	if err := db.SetRetentionDays(ctx, a.ID, 30); err != nil {
		t.Fatal(err)
	}
	for _, days := range []int{0, -1, store.MaxRetentionDays + 1} {
		if err := db.SetRetentionDays(ctx, a.ID, days); domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("retention %d: %v", days, err)
		}
	}
	if d, _ := db.RetentionDays(ctx, b.ID); d != store.DefaultRetentionDays {
		t.Fatalf("default retention %d", d)
	}
	srcA, srcB := newSource(t, db, a.ID), newSource(t, db, b.ID)
	today := clk.now
	day := func(n int) time.Time { return today.AddDate(0, 0, n) }

	// Forty days ago: A's events (delivered), one whose delivery is still pending, B's events.
	clk.now = day(-40)
	storeBatch(t, db, a.ID, srcA, "a-old", true, ev{id: "a-old-1", typ: "delivery", at: day(-40)}, ev{id: "a-old-2", typ: "open", at: day(-40)})
	deliverAll(t, db, a.ID)
	storeBatch(t, db, a.ID, srcA, "a-old-pending", true, ev{id: "a-old-pending", typ: "click", at: day(-40)})
	storeBatch(t, db, b.ID, srcB, "b-old", false, ev{id: "b-old", typ: "delivery", at: day(-40)})
	// A hundred days ago for B, beyond its 90.
	clk.now = day(-100)
	storeBatch(t, db, b.ID, srcB, "b-older", false, ev{id: "b-older", typ: "delivery", at: day(-100)})
	// An old event that arrived twenty days ago (a back-fill): kept for the retention period after it came.
	clk.now = day(-20)
	storeBatch(t, db, a.ID, srcA, "a-late", false, ev{id: "a-late-old", typ: "bounce", at: day(-35)})
	// Recent ones.
	clk.now = today
	storeBatch(t, db, a.ID, srcA, "a-new", true, ev{id: "a-new", typ: "delivery", at: day(0).Add(-time.Hour)})
	rollupAll(t, db)

	p, err := db.PruneExpired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Events != 3 || p.Deliveries != 2 || p.Batches != 3 {
		t.Fatalf("pruned %+v; want 3 events (a-old-1, a-old-2, b-older), 2 deliveries, 3 batches", p)
	}
	if got := ids(t, db, store.EventFilter{TenantID: a.ID}); !slices.Equal(got, []string{"a-new", "a-late-old", "a-old-pending"}) {
		t.Fatalf("A keeps %v", got)
	}
	if got := ids(t, db, store.EventFilter{TenantID: b.ID}); !slices.Equal(got, []string{"b-old"}) {
		t.Fatalf("B keeps %v", got)
	}
	// The pending delivery is still there to be sent, and the recent one.
	ds, _, err := db.Deliveries(ctx, store.DeliveryFilter{TenantID: a.ID, Limit: 100})
	if err != nil || len(ds) != 2 {
		t.Fatalf("A's deliveries after retention: %d, %v", len(ds), err)
	}
	// Counts follow the deletes.
	if n := count(t, db, store.EventFilter{TenantID: a.ID}); n != 3 {
		t.Fatalf("A's count %d", n)
	}
	if n := count(t, db, store.EventFilter{TenantID: a.ID, From: day(-50), To: day(1)}); n != 3 {
		t.Fatalf("A's count by time %d", n)
	}
	// Batch receipts of pruned batches are gone; the rest stay.
	if _, err := db.Receipt(ctx, a.ID, srcA, "a-old"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("receipt of a pruned batch: %v", err)
	}
	if _, err := db.Receipt(ctx, a.ID, srcA, "a-new"); err != nil {
		t.Fatalf("receipt of a kept batch: %v", err)
	}
	// Once its delivery is done, the held event goes on the next run, and the late one once
	// its arrival is 30 days old; nothing else changes.
	deliverAll(t, db, a.ID)
	if p, err := db.PruneExpired(ctx); err != nil || p.Events != 1 || p.Deliveries != 1 {
		t.Fatalf("second run: %+v, %v", p, err)
	}
	clk.now = day(11)
	if p, err := db.PruneExpired(ctx); err != nil || p.Events != 1 || p.Batches != 1 {
		t.Fatalf("run after the late event's arrival aged: %+v, %v", p, err)
	}
	if got := ids(t, db, store.EventFilter{TenantID: a.ID}); !slices.Equal(got, []string{"a-new"}) {
		t.Fatalf("A keeps %v", got)
	}
	if p, err := db.PruneExpired(ctx); err != nil || p != (store.Pruned{}) {
		t.Fatalf("third run: %+v, %v", p, err)
	}
}

// TestRetentionPrunesInSmallWrites removes more events than one write takes.
func TestRetentionPrunesInSmallWrites(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, _ := db.CreateTenant(ctx, "A")
	old := time.Now().AddDate(0, 0, -200)
	var evs []ev
	for i := range 1234 {
		evs = append(evs, ev{id: fmt.Sprintf("e%d", i), typ: "delivery", at: old.Add(time.Duration(i) * time.Second)})
	}
	seed(t, db, tn.ID, evs...)
	seed(t, db, tn.ID, ev{id: "recent", typ: "delivery", at: time.Now()})
	commits, _ := db.CommitStats()
	p, err := db.PruneTenant(ctx, tn.ID, time.Now().AddDate(0, 0, -90))
	if err != nil || p.Events != 1234 {
		t.Fatalf("pruned %+v, %v", p, err)
	}
	if after, _ := db.CommitStats(); after-commits < 3 {
		t.Fatalf("1,234 events pruned in %d writes; each write must stay small", after-commits)
	}
	if got := ids(t, db, store.EventFilter{TenantID: tn.ID}); !slices.Equal(got, []string{"recent"}) {
		t.Fatalf("kept %v", got)
	}
}

// TestDatabaseStopsGrowingUnderSteadyTraffic feeds a day's events every "day" with a 3-day
// retention: once three days are stored, pruning frees as many pages as a day needs and SQLite
// reuses them, so the file stays the same size instead of growing by a day each day. (The
// database keeps auto_vacuum off; freed pages go to the free list, not back to the OS.)
func TestDatabaseStopsGrowingUnderSteadyTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 20 days of events")
	}
	db := MustOpenDB(t)
	ctx := context.Background()
	clk := &clock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	db.Clock = clk.Now
	tn, _ := db.CreateTenant(ctx, "A")
	if err := db.SetRetentionDays(ctx, tn.ID, 3); err != nil {
		t.Fatal(err)
	}
	src := newSource(t, db, tn.ID)
	pad := strings.Repeat("x", 900)
	var sizes []int64
	for d := range 20 {
		b := &store.InboxBatch{TenantID: tn.ID, SourceID: src, BatchID: fmt.Sprintf("day-%d", d), Body: []byte(`["` + pad + `"]`)}
		if _, err := db.AddBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		pb := &store.ProcessedBatch{Batch: b, Target: "segment", MaxAge: time.Hour}
		for i := range 800 {
			id := fmt.Sprintf("d%d-%d", d, i)
			pb.Events = append(pb.Events, &store.EmailEvent{EventID: id, Type: "delivery", Wrapper: "message_event",
				Time: clk.now.Add(time.Duration(i) * time.Minute), Recipient: fmt.Sprintf("u%d@example.com", i), MessageID: "m" + id,
				CampaignID: "c", Body: []byte(`{"event_id":"` + id + `","pad":"` + pad + `"}`), Status: store.EventNotSent})
		}
		if err := db.CommitProcessed(ctx, pb); err != nil {
			t.Fatal(err)
		}
		rollupAll(t, db)
		if _, err := db.PruneExpired(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		sp, err := db.SpaceUsed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, sp.Bytes())
		clk.now = clk.now.AddDate(0, 0, 1)
	}
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database size by day (KB): %v; file %d KB", kb(sizes), fi.Size()>>10)
	// Day 6 holds three days plus the one being pruned: from then on the size is flat, while
	// without pruning day 20 would hold 20 days.
	if grown := sizes[19] - sizes[5]; grown > sizes[5]/10 {
		t.Fatalf("the database grew from %d to %d bytes between day 6 and day 20", sizes[5], sizes[19])
	}
	if fi.Size() > sizes[5]*12/10 {
		t.Fatalf("the file is %d bytes; the pages in use were %d on day 6", fi.Size(), sizes[5])
	}
}

func kb(sizes []int64) []int64 {
	out := make([]int64, len(sizes))
	for i, s := range sizes {
		out[i] = s >> 10
	}
	return out
}
