package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestForegroundWritesGoBeforeAWaitingBulkWrite: with a background write queued first and
// foreground writes (webhook acks) queued after it, the foreground writes commit first.
func TestForegroundWritesGoBeforeAWaitingBulkWrite(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	ctx := context.Background()
	release, held := holdWriter(t, db)

	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- db.WriteBulk(ctx, func(tx *sql.Tx) error { note("bulk"); return nil })
	}()
	waitFor(t, "the bulk write to queue", func() bool { _, bg := db.WriterStats(); return bg.Waiting == 1 })
	const acks = 5
	for i := range acks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.Write(ctx, func(tx *sql.Tx) error {
				note("ack")
				_, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, i)
				return err
			})
		}()
	}
	waitFor(t, "the acks to queue", func() bool { fg, _ := db.WriterStats(); return fg.Waiting == acks })
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"ack", "ack", "ack", "ack", "ack", "bulk"}; !slices.Equal(order, want) {
		t.Fatalf("commit order %v; want the acks queued after the bulk write to go first %v", order, want)
	}
}

// TestBulkWritesAreNotStarved: while more foreground writes wait than one transaction takes (the
// foreground lane is never empty), background writes still get their turn: a strict priority
// would hold them until the foreground lane happened to empty.
func TestBulkWritesAreNotStarved(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var next, done atomic.Int64
	const writers = 4 * 512 // however many a transaction takes, more are still waiting
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := next.Add(1)
				if err := db.Write(ctx, func(tx *sql.Tx) error {
					_, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, id)
					return err
				}); err != nil {
					return
				}
				done.Add(1)
			}
		}()
	}
	waitFor(t, "the foreground lane to fill", func() bool { fg, _ := db.WriterStats(); return fg.Waiting > 1000 })

	const bulks = 5
	var waitingSeen []int64
	for i := range bulks {
		err := db.WriteBulk(ctx, func(tx *sql.Tx) error {
			fg, _ := db.WriterStats()
			waitingSeen = append(waitingSeen, fg.Waiting)
			_, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, -1-i)
			return err
		})
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("bulk write %d: %v (starved behind the foreground)", i, err)
		}
	}
	close(stop)
	wg.Wait()
	fg, bg := db.WriterStats()
	t.Logf("%d bulk writes went while %v foreground writes waited; %d foreground writes in %d transactions (%v), %d background (%v)",
		bulks, waitingSeen, done.Load(), fg.Transactions, fg.Busy.Round(time.Millisecond), bg.Transactions, bg.Busy.Round(time.Millisecond))
	// However many writes one transaction takes, over a thousand others are still waiting: a bulk
	// write that ran with none waiting had waited for the foreground lane to empty (starved).
	if slices.Min(waitingSeen) == 0 {
		t.Fatalf("bulk writes ran with %v foreground writes waiting; each must get its turn while they wait", waitingSeen)
	}
}

// TestCheckpointDoesNotWaitForTheWriter: the checkpoint after a prune runs beside the writer,
// not on its connection, where it would wait for (and then hold up) every write.
func TestCheckpointDoesNotWaitForTheWriter(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	release, held := holdWriter(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := db.Checkpoint(ctx)
	release()
	if herr := <-held; herr != nil {
		t.Fatal(herr)
	}
	if err != nil {
		t.Fatalf("checkpoint while a write holds the writer: %v", err)
	}
}

// TestRetentionBoundsEachWrite: old raw batches go a few megabytes per write, and every prune is a
// background write.
func TestRetentionBoundsEachWrite(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, _ := db.CreateTenant(ctx, "A")
	src := newSource(t, db, tn.ID)
	clk := &clock{now: time.Now().AddDate(0, 0, -200)}
	db.Clock = clk.Now
	body := make([]byte, 6<<20)
	for i := range 4 {
		storeBatchBody(t, db, tn.ID, src, fmt.Sprintf("big-%d", i), body)
	}
	clk.now = time.Now()
	fg0, bg0 := db.WriterStats()
	p, err := db.PruneTenant(ctx, tn.ID, time.Now().AddDate(0, 0, -90))
	if err != nil || p.Batches != 4 {
		t.Fatalf("pruned %+v, %v; want the 4 batches", p, err)
	}
	fg, bg := db.WriterStats()
	// One write for events, two for 24 MiB of batches (16 MiB each at most), one for jobs and counts.
	if txs := bg.Transactions - bg0.Transactions; txs < 4 || fg.Transactions != fg0.Transactions {
		t.Fatalf("retention took %d background and %d foreground writes; want ≥ 4 background (a few MiB each), none foreground",
			txs, fg.Transactions-fg0.Transactions)
	}
	t.Logf("longest background write %v", bg.Longest.Round(100*time.Microsecond))
}

// storeBatchBody stores a processed raw batch with the given body and no events.
func storeBatchBody(t *testing.T, db *store.DB, tenantID, sourceID, batchID string, body []byte) {
	t.Helper()
	b := &store.InboxBatch{TenantID: tenantID, SourceID: sourceID, BatchID: batchID, Body: body}
	if _, err := db.AddBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := db.CommitProcessed(context.Background(), &store.ProcessedBatch{Batch: b, Target: "segment"}); err != nil {
		t.Fatal(err)
	}
}
