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
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/auth"
	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/outbound"
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
	h.sender = delivery.NewSegmentSender(db, box, outbound.LoopbackOnly(), log)
	h.sender.Cooldown = 100 * time.Millisecond
	opt.Target = domain.TargetSegment
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
	return h.enqueueFrom(tenantID, 0, n, maxAge)
}

// enqueueFrom is enqueue with message numbers from..from+n-1.
func (h *harness) enqueueFrom(tenantID string, from, n int, maxAge time.Duration) []string {
	var ids []string
	err := h.db.Write(context.Background(), func(tx *sql.Tx) error {
		for i := from; i < from+n; i++ {
			id := fmt.Sprintf("sp-%s-%d", tenantID, i)
			payload, _ := json.Marshal(delivery.SegmentMessage{Type: "track", MessageID: id, UserID: "u1", Event: "Email Delivered",
				Timestamp: time.Unix(1460989507, 0).UTC(), Properties: map[string]any{"n": i}})
			if _, err := store.InsertDelivery(tx, time.Now(), store.NewDelivery{TenantID: tenantID, Target: domain.TargetSegment,
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

// failKey makes the fake Segment answer status to every request made with writeKey, and 200 to
// the others.
func (h *harness) failKey(writeKey string, status int) {
	h.fake.Behave(func(key string) fakesegment.Reply {
		if key == writeKey {
			return fakesegment.Reply{Status: status}
		}
		return fakesegment.Reply{}
	})
}

// waitFor waits until f selects n deliveries of the tenant, and returns them.
func (h *harness) waitFor(f store.DeliveryFilter, n int) []*store.Delivery {
	h.t.Helper()
	f.Limit = 1000
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, _, err := h.db.Deliveries(context.Background(), f)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(ds) == n {
			return ds
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deliveries matching %+v: %d, want %d", f, len(ds), n)
		}
	}
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
	if !h.fake.WaitUnique("wk_one", 50, 60*time.Second) {
		t.Fatalf("fake Segment got %d of 50 messages", len(h.fake.Unique("wk_one")))
	}
	h.waitStatus(tid, domain.StatusDelivered, 50, 60*time.Second)
	got := h.fake.Unique("wk_one")
	m := got[ids[7]]
	if m.Type != "track" || m.Event != "Email Delivered" || m.UserID != "u1" || fmt.Sprint(m.Properties["n"]) != "7" ||
		!m.Timestamp.Equal(time.Unix(1460989507, 0)) {
		t.Fatalf("message as received: %+v", m)
	}
}

// TestRetriesAfterServerErrors: each failed request is one counted attempt (analytics-go's own
// retry loop makes no further requests), a delivered row keeps no error of an earlier attempt,
// and while it waits its last_error shows the status and Segment's answer.
func TestRetriesAfterServerErrors(t *testing.T) {
	h := newHarness(t, delivery.Options{Backoff: func(int) time.Duration { return 300 * time.Millisecond }})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_flaky")
	h.fake.Script("wk_flaky", fakesegment.Reply{Status: 500}, fakesegment.Reply{Status: 503})
	h.enqueue(tid, 1, delivery.MaxAge)
	h.waitStatus(tid, domain.StatusDelivered, 1, 60*time.Second)
	ds, _, _ := h.db.Deliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Limit: 10})
	if reqs := len(h.fake.Requests("wk_flaky")); reqs != 3 || ds[0].Attempts != 3 || ds[0].LastError != "" {
		t.Fatalf("%d requests; delivery after 500, 503, 200: attempts %d, last_error %q (want 3 requests, 3 attempts, no error)",
			reqs, ds[0].Attempts, ds[0].LastError)
	}
}

// TestFailedAttemptShowsStatusAndAnswer: last_error is the status and Segment's answer, and
// deliveries/retry {"status": "failed"} sends a waiting delivery now.
func TestFailedAttemptShowsStatusAndAnswer(t *testing.T) {
	h := newHarness(t, delivery.Options{Backoff: func(int) time.Duration { return time.Hour }})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_down")
	h.fake.Script("wk_down", fakesegment.Reply{Status: 502})
	h.enqueue(tid, 2, delivery.MaxAge)
	ds := h.waitFor(store.DeliveryFilter{TenantID: tid, Status: domain.StatusFailed}, 2)
	if ds[0].LastError != `502 {"success": false}` || ds[0].Attempts != 1 {
		t.Fatalf("failed deliveries: %d, first %+v", len(ds), ds[0])
	}
	n, err := h.db.RetryDeliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Status: domain.StatusFailed}, delivery.MaxAge)
	if err != nil || n != 2 {
		t.Fatalf("retry failed: %d, %v", n, err)
	}
	h.engine.Notify(tid)
	h.waitStatus(tid, domain.StatusDelivered, 2, 60*time.Second) // the backoff was an hour
}

// TestRejectedWriteKeyPausesTheLane: a 401 pauses the tenant's Segment lane with a visible
// reason; nothing more is sent with that key; a new key sends what waits at once.
func TestRejectedWriteKeyPausesTheLane(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_revoked")
	h.failKey("wk_revoked", 401)
	h.enqueue(tid, 3, delivery.MaxAge)
	var k *store.SegmentKey
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		k, _ = h.db.SegmentKey(context.Background(), tid)
		if k.Status == store.SegmentKeyRejected || time.Now().After(deadline) {
			break
		}
	}
	if k.Status != store.SegmentKeyRejected || k.StatusSince.IsZero() || k.StatusReason != `401 {"success": false}` {
		t.Fatalf("segment key after a 401: %+v", k)
	}
	// More deliveries are held with the reason, unsent and uncounted.
	h.enqueueFrom(tid, 3, 2, delivery.MaxAge)
	h.waitFor(store.DeliveryFilter{TenantID: tid, Reason: domain.ReasonKeyRejected}, 5)
	if n := len(h.fake.Requests("wk_revoked")); n != 1 {
		t.Fatalf("%d requests with a rejected key; want 1", n)
	}
	h.key(tid, "wk_replaced")
	h.engine.Notify(tid)
	if !h.fake.WaitUnique("wk_replaced", 5, 60*time.Second) {
		t.Fatalf("after the key was replaced: %d of 5 delivered", len(h.fake.Unique("wk_replaced")))
	}
	h.waitStatus(tid, domain.StatusDelivered, 5, 60*time.Second)
	if k, _ := h.db.SegmentKey(context.Background(), tid); k.Status != store.SegmentActive {
		t.Fatalf("status after a new key: %s", k.Status)
	}
}

// TestRefusedMessageIsDeadLettered: a 400 for a request is split until the message Segment
// refuses stands alone; only it is dead-lettered, with Segment's answer; the others go out.
func TestRefusedMessageIsDeadLettered(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_strict")
	bad := fmt.Sprintf("sp-%s-%d", tid, 13)
	h.fake.RefuseWhen(func(m fakesegment.Message) bool { return m.MessageID == bad })
	h.enqueue(tid, 20, delivery.MaxAge)
	h.waitStatus(tid, domain.StatusDelivered, 19, 60*time.Second)
	h.waitStatus(tid, domain.StatusDead, 1, 60*time.Second)
	dead, _, _ := h.db.Deliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Status: domain.StatusDead, Limit: 10})
	if dead[0].MessageID != bad || !strings.HasPrefix(dead[0].LastError, "400 ") || !strings.Contains(dead[0].LastError, "invalid message "+bad) {
		t.Fatalf("dead-lettered %s with %q; want %s with Segment's answer", dead[0].MessageID, dead[0].LastError, bad)
	}
	if len(h.fake.Unique("wk_strict")) != 19 {
		t.Fatalf("%d messages arrived, want 19", len(h.fake.Unique("wk_strict")))
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_busy")
	h.fake.Script("wk_busy", fakesegment.Reply{Status: 429, RetryAfter: "2"})
	h.enqueue(tid, 5, delivery.MaxAge)
	h.waitStatus(tid, domain.StatusDelivered, 5, 60*time.Second)
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
	for deadline := time.Now().Add(60 * time.Second); len(h.fake.Requests("wk_slow")) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow tenant's request never reached the fake Segment")
		}
	}
	// The slow tenant's request is hanging now.
	start := time.Now()
	h.enqueue(fast, 20, delivery.MaxAge)
	if !h.fake.WaitUnique("wk_fast", 20, 25*time.Second) {
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
	for _, d := range h.waitFor(store.DeliveryFilter{TenantID: tid, Status: domain.StatusPending, Reason: domain.ReasonNoWriteKey}, 3) {
		if d.Attempts != 0 {
			t.Fatalf("a delivery waiting for a write key counts %d attempts", d.Attempts)
		}
	}
	h.key(tid, "wk_late")
	h.engine.Notify(tid)
	if !h.fake.WaitUnique("wk_late", 3, 60*time.Second) {
		t.Fatal("deliveries did not go out once a write key was registered")
	}
	h.waitStatus(tid, domain.StatusDelivered, 3, 60*time.Second)
}

func TestExpiredDeliveriesDieAndCanBeRetried(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_down")
	h.fake.Behave(func(string) fakesegment.Reply { return fakesegment.Reply{Status: 500} })
	h.enqueue(tid, 2, time.Millisecond)
	h.waitStatus(tid, domain.StatusDead, 2, 60*time.Second)

	h.fake.Behave(nil)
	n, err := h.db.RetryDeliveries(context.Background(), store.DeliveryFilter{TenantID: tid, Status: domain.StatusDead}, delivery.MaxAge)
	if err != nil || n != 2 {
		t.Fatalf("retry: %d, %v", n, err)
	}
	h.engine.Notify(tid)
	h.waitStatus(tid, domain.StatusDelivered, 2, 60*time.Second)
}

func TestStartReleasesRowsLeftClaimed(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tid := h.tenant("wk_crash")
	h.enqueue(tid, 4, delivery.MaxAge) // engine not started: Notify is ignored
	// A process that claimed the rows and died.
	if ds, err := h.db.ClaimDeliveries(context.Background(), domain.TargetSegment, tid, 10); err != nil || len(ds) != 4 {
		t.Fatalf("claim: %d, %v", len(ds), err)
	}
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !h.fake.WaitUnique("wk_crash", 4, 60*time.Second) {
		t.Fatal("rows claimed by a dead process were never sent")
	}
}

// TestNewKeySendsWhatWaitsForItsNextAttempt: deliveries that failed with the old key and wait
// an hour for their next attempt go out within seconds of the key being replaced.
func TestNewKeySendsWhatWaitsForItsNextAttempt(t *testing.T) {
	h := newHarness(t, delivery.Options{Backoff: func(int) time.Duration { return time.Hour }})
	h.engine.Start(context.Background())
	tid := h.tenant("wk_wrong_workspace")
	h.failKey("wk_wrong_workspace", 500)
	h.enqueue(tid, 4, delivery.MaxAge)
	h.waitFor(store.DeliveryFilter{TenantID: tid, Status: domain.StatusFailed}, 4)
	h.key(tid, "wk_right_workspace")
	h.engine.Notify(tid)
	h.waitStatus(tid, domain.StatusDelivered, 4, 60*time.Second) // not after the hour's backoff
}

// TestDialTimeGuardRefusesPrivateEndpoints: an endpoint that reaches a private address at dial
// time (a key stored before the check existed, or a name that resolves there) is refused without
// a connection; the tenant's last_error says only that the address was refused.
func TestDialTimeGuardRefusesPrivateEndpoints(t *testing.T) {
	h := newHarness(t, delivery.Options{Backoff: func(int) time.Duration { return time.Hour }})
	h.sender.Transport = delivery.SegmentTransport(outbound.New(nil))
	h.engine.Start(context.Background())
	tid := h.tenant("wk_inside")
	h.enqueue(tid, 1, delivery.MaxAge)
	ds := h.waitFor(store.DeliveryFilter{TenantID: tid, Status: domain.StatusFailed}, 1)
	if !strings.Contains(ds[0].LastError, "refused by the outbound policy") {
		t.Fatalf("delivery to a loopback endpoint without the allow-list: %+v", ds)
	}
	if n := len(h.fake.Requests("wk_inside")); n != 0 {
		t.Fatalf("the loopback endpoint got %d requests", n)
	}
}
