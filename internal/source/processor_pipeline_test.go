package source_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// inboxHook is the real store with a hook run after each CommitProcessed.
type inboxHook struct {
	*store.DB
	after func(p *store.ProcessedBatch) error
}

func (h inboxHook) CommitProcessed(ctx context.Context, p *store.ProcessedBatch) error {
	if err := h.DB.CommitProcessed(ctx, p); err != nil {
		return err
	}
	return h.after(p)
}

func pipelineRig(t *testing.T) (*store.DB, func(i int)) {
	db := openStore(t)
	ctx := context.Background()
	src := newSource(t, db, &store.Source{ID: "src_pppppppppppppppp"})
	add := func(i int) {
		body := fmt.Sprintf(`[{"msys":{"message_event":{"type":"delivery","event_id":"e%d","timestamp":"1460989507","rcpt_to":"a@example.com"}}}]`, i)
		if _, err := db.AddBatch(ctx, &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, BatchID: fmt.Sprint(i), Body: []byte(body)}); err != nil {
			t.Error(err)
		}
	}
	return db, add
}

// A batch committed while the processor is at work is taken in the same call: the writer does
// not wait for a round to end before the next batches are mapped.
func TestProcessOnceTakesBatchesCommittedMeanwhile(t *testing.T) {
	db, add := pipelineRig(t)
	add(0)
	var added atomic.Int32
	h := inboxHook{DB: db, after: func(*store.ProcessedBatch) error {
		if n := added.Add(1); n <= 5 {
			add(int(n)) // every commit of the first five brings one more batch
		}
		return nil
	}}
	p := source.NewProcessor(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if done, err := p.ProcessOnce(t.Context()); err != nil || done != 6 {
		t.Fatalf("ProcessOnce = %d, %v; want the first batch and the 5 committed meanwhile", done, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL`); n != 0 {
		t.Fatalf("%d batches left unprocessed", n)
	}
}

// After a batch fails, no further batch is started: the call returns the error with the others
// left for the next round, oldest first.
func TestProcessOnceStopsStartingBatchesAfterAFailure(t *testing.T) {
	db, add := pipelineRig(t)
	const n = 40
	for i := range n {
		add(i)
	}
	broken := errors.New("disk on fire")
	h := inboxHook{DB: db, after: func(*store.ProcessedBatch) error { return broken }}
	p := source.NewProcessor(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done, err := p.ProcessOnce(t.Context())
	if !errors.Is(err, broken) || done != 0 {
		t.Fatalf("ProcessOnce = %d, %v; want 0 and the commit's error", done, err)
	}
	// Each batch did commit before its hook failed; those started before the failure was seen
	// are a handful (the workers and the batches read ahead), never all of them.
	if left := count(t, db, `SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL`); left < n/2 {
		t.Fatalf("%d of %d batches were still started after the first failure", n-left, n)
	}
}
