package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// pipelineSender holds its first Send until the engine has claimed the next batch, and counts
// how many Sends ran at once.
type pipelineSender struct {
	db              *store.DB
	tenantID        string
	calls, inFlight atomic.Int32
	most            atomic.Int32
	sawNextClaimed  atomic.Bool
}

func (s *pipelineSender) Send(ctx context.Context, tenantID string, ds []*store.Delivery) []delivery.Result {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	if s.calls.Add(1) == 1 {
		// The condition this test is about: the next batch is claimed while this one is sent.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
			sending, _, err := s.db.Deliveries(ctx, store.DeliveryFilter{TenantID: s.tenantID, Status: domain.StatusSending, Limit: 100})
			if err == nil && len(sending) == 2*len(ds) {
				s.sawNextClaimed.Store(true)
				break
			}
		}
	}
	return make([]delivery.Result, len(ds)) // all delivered
}

// A lane claims its next batch while the current one is being sent (and records a sent one
// while the next is sent), but never runs two Sends of one tenant at once.
func TestLaneClaimsTheNextBatchWhileSending(t *testing.T) {
	h := newHarness(t, delivery.Options{})
	tid := h.tenant("wk")
	h.enqueue(tid, 6, time.Hour)
	s := &pipelineSender{db: h.db, tenantID: tid}
	e := delivery.NewEngine(h.db, s, delivery.Options{Target: domain.TargetSegment, Batch: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Close(ctx)
	})
	h.waitStatus(tid, domain.StatusDelivered, 6, 60*time.Second)
	if !s.sawNextClaimed.Load() {
		t.Fatal("the next batch was not claimed while the first one was being sent")
	}
	if m := s.most.Load(); m != 1 {
		t.Fatalf("%d Sends of one tenant ran at once; want 1", m)
	}
}
