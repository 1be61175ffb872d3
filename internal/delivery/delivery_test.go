package delivery_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/store"
)

type harness struct {
	t      *testing.T
	db     *store.DB
	box    *auth.Box
	fake   *fakesegment.Server
	sender *delivery.SegmentSender
	engine *delivery.Engine
}

func newHarness(t *testing.T, opt delivery.Options) *harness {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	box, _ := auth.NewBox(bytes.Repeat([]byte{1}, 32))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{t: t, db: db, box: box, fake: fakesegment.New()}
	h.sender = delivery.NewSegmentSender(db, box, log)
	h.sender.Cooldown = 100 * time.Millisecond
	opt.Target = delivery.TargetSegment
	if opt.Backoff == nil {
		opt.Backoff = func(int) time.Duration { return 100 * time.Millisecond }
	}
	h.engine = delivery.NewEngine(db, h.sender, opt, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h.engine.Close(ctx)
		h.sender.Close(ctx)
		h.fake.Close()
		db.Close()
	})
	return h
}

func (h *harness) tenant(writeKey string) string {
	tn, err := h.db.CreateTenant(context.Background(), "t")
	if err != nil {
		h.t.Fatal(err)
	}
	if writeKey != "" {
		h.key(tn.ID, writeKey)
	}
	return tn.ID
}

func (h *harness) key(tenantID, writeKey string) {
	_, err := h.db.PutSegmentKey(context.Background(), store.SegmentKey{TenantID: tenantID, WriteKeyEnc: h.box.Seal(writeKey),
		Hint: domain.Hint(writeKey), Endpoint: h.fake.URL, MaxRPS: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
}

// enqueue adds n track deliveries for a tenant and returns their message ids.
func (h *harness) enqueue(tenantID string, n int, maxAge time.Duration) []string {
	var ids []string
	err := h.db.Write(context.Background(), func(tx *sql.Tx) error {
		for i := range n {
			id := fmt.Sprintf("sp-%s-%d", tenantID, i)
			payload, _ := json.Marshal(delivery.SegmentMessage{Type: "track", MessageID: id, UserID: "u1", Event: "Email Delivered",
				Timestamp: time.Unix(1460989507, 0).UTC(), Properties: map[string]any{"n": i}})
			if _, err := store.InsertDelivery(tx, time.Now(), store.NewDelivery{TenantID: tenantID, Target: delivery.TargetSegment,
				OriginID: "src_x", MessageID: id, Payload: payload, MaxAge: maxAge}); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.engine.Notify(tenantID)
	return ids
}

func (h *harness) statuses(tenantID string) map[string]int {
	ds, _, err := h.db.Deliveries(context.Background(), store.DeliveryFilter{TenantID: tenantID, Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range ds {
		out[d.Status]++
	}
	return out
}

func (h *harness) waitStatus(tenantID, status string, n int, timeout time.Duration) {
	h.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if h.statuses(tenantID)[status] == n {
			return
		}
	}
	h.t.Fatalf("after %s: statuses %v; want %d %s", timeout, h.statuses(tenantID), n, status)
}

func TestDeliversThroughAnalyticsGo(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tid := h.tenant("wk_one")
	ids := h.enqueue(tid, 50, delivery.MaxAge)
	if !h.fake.WaitUnique("wk_one", 50, 10*time.Second) {
		t.Fatalf("fake Segment got %d of 50 messages", len(h.fake.Unique("wk_one")))
	}
	h.waitStatus(tid, store.StatusDelivered, 50, 5*time.Second)
	got := h.fake.Unique("wk_one")
	m := got[ids[7]]
	if m.Type != "track" || m.Event != "Email Delivered" || m.UserID != "u1" || fmt.Sprint(m.Properties["n"]) != "7" ||
		!m.Timestamp.Equal(time.Unix(1460989507, 0)) {
		t.Fatalf("message as received: %+v", m)
	}
}

func TestRetriesAfterServerErrors(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_flaky")
	h.fake.Script("wk_flaky", fakesegment.Reply{Status: 500}, fakesegment.Reply{Status: 503})
	h.enqueue(tid, 10, delivery.MaxAge)
	h.waitStatus(tid, store.StatusDelivered, 10, 15*time.Second)
	if n := len(h.fake.Unique("wk_flaky")); n != 10 {
		t.Fatalf("unique messages = %d, want 10", n)
	}
	// The first requests failed, so at least one delivery shows its retry and the error that
	// caused it (which ones depends on how analytics-go split them into requests).
	ds, _, _ := h.db.Deliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Limit: 10})
	retried := 0
	for _, d := range ds {
		if d.Attempts >= 2 && d.LastError != "" {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no delivery shows a retry and its last error after the 500 and the 503")
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_busy")
	h.fake.Script("wk_busy", fakesegment.Reply{Status: 429, RetryAfter: "2"})
	h.enqueue(tid, 5, delivery.MaxAge)
	h.waitStatus(tid, store.StatusDelivered, 5, 15*time.Second)
	reqs := h.fake.Requests("wk_busy")
	if len(reqs) < 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if gap := reqs[1].Sub(reqs[0]); gap < 2*time.Second {
		t.Fatalf("sent again %s after a 429 with Retry-After: 2", gap)
	}
}

func TestHangingTenantDoesNotDelayAnother(t *testing.T) {
	h := newHarness(t, delivery.Options{SendTimeout: 30 * time.Second})
	h.engine.Start(context.Background())
	slow, fast := h.tenant("wk_slow"), h.tenant("wk_fast")
	h.fake.Behave(func(key string) fakesegment.Reply {
		if key == "wk_slow" {
			return fakesegment.Reply{Hang: time.Minute}
		}
		return fakesegment.Reply{}
	})
	h.enqueue(slow, 20, delivery.MaxAge)
	time.Sleep(200 * time.Millisecond) // the slow tenant's request is hanging now
	start := time.Now()
	h.enqueue(fast, 20, delivery.MaxAge)
	if !h.fake.WaitUnique("wk_fast", 20, 5*time.Second) {
		t.Fatalf("the healthy tenant got %d of 20 messages while another tenant's endpoint hung", len(h.fake.Unique("wk_fast")))
	}
	t.Logf("healthy tenant delivered in %s while the other hung", time.Since(start))
	if n := len(h.fake.Unique("wk_slow")); n != 0 {
		t.Fatalf("hanging endpoint recorded %d messages", n)
	}
}

func TestWaitsForWriteKey(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("")
	h.enqueue(tid, 3, delivery.MaxAge)
	// Without a key the rows go back to pending with the reason, attempts not counted.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, _, _ := h.db.Deliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Limit: 10})
		if len(ds) == 3 && ds[0].Reason == delivery.ReasonNoWriteKey && ds[0].Status == store.StatusPending && ds[0].Attempts == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries without a write key: %+v", ds[0])
		}
	}
	h.key(tid, "wk_late")
	h.engine.Notify(tid)
	if !h.fake.WaitUnique("wk_late", 3, 10*time.Second) {
		t.Fatal("deliveries did not go out once a write key was registered")
	}
	h.waitStatus(tid, store.StatusDelivered, 3, 5*time.Second)
}

func TestExpiredDeliveriesDieAndCanBeRetried(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_down")
	h.fake.Behave(func(string) fakesegment.Reply { return fakesegment.Reply{Status: 500} })
	h.enqueue(tid, 2, time.Millisecond)
	h.waitStatus(tid, store.StatusDead, 2, 10*time.Second)

	h.fake.Behave(nil)
	n, err := h.db.RetryDeliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Status: store.StatusDead}, delivery.MaxAge)
	if err != nil || n != 2 {
		t.Fatalf("retry: %d, %v", n, err)
	}
	h.engine.Notify(tid)
	h.waitStatus(tid, store.StatusDelivered, 2, 10*time.Second)
}

func TestStartReleasesRowsLeftClaimed(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tid := h.tenant("wk_crash")
	h.enqueue(tid, 4, delivery.MaxAge) // engine not started: Notify is ignored
	// A process that claimed the rows and died.
	if ds, err := h.db.ClaimDeliveries(context.Background(), delivery.TargetSegment, tid, 10); err != nil || len(ds) != 4 {
		t.Fatalf("claim: %d, %v", len(ds), err)
	}
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !h.fake.WaitUnique("wk_crash", 4, 10*time.Second) {
		t.Fatal("rows claimed by a dead process were never sent")
	}
}
