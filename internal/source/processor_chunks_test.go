package source_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// TestProcessorCommitsLargeBatchesInChunksAndRedoesTheRest: a batch larger than one transaction
// takes is committed in several background transactions; after a crash between two of them (the
// later chunks' rows absent, the batch not marked processed) the processor does the batch again
// and stores and queues exactly what was missing, and the receipt stays right.
func TestProcessorCommitsLargeBatchesInChunksAndRedoesTheRest(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	src := newSource(t, db, &store.Source{ID: "src_dddddddddddddddd"})
	const n = 2100 // more than one chunk takes (2,000 events)
	elems := make([]string, 0, n+1)
	for i := range n {
		elems = append(elems, fmt.Sprintf(`{"msys":{"message_event":{"type":"delivery","event_id":"e%d","timestamp":"1460989507","rcpt_to":"u%d@example.com","rcpt_meta":{"user_id":"u%d"}}}}`, i, i, i))
	}
	elems = append(elems, elems[0]) // SparkPost re-sends events: one duplicate
	if _, err := db.AddBatch(ctx, &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, BatchID: "big", Body: []byte("[" + strings.Join(elems, ",") + "]")}); err != nil {
		t.Fatal(err)
	}
	p := source.NewProcessor(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	_, before := db.WriterStats()
	if done, err := p.ProcessOnce(ctx); err != nil || done != 1 {
		t.Fatalf("ProcessOnce = %d, %v", done, err)
	}
	if _, after := db.WriterStats(); after.Transactions-before.Transactions < 2 {
		t.Fatalf("%d events committed in %d transaction(s); want chunks", n, after.Transactions-before.Transactions)
	}
	check := func(when string) {
		t.Helper()
		if e, d := count(t, db, `SELECT COUNT(*) FROM email_events`), count(t, db, `SELECT COUNT(DISTINCT message_id) FROM deliveries`); e != n || d != n ||
			count(t, db, `SELECT COUNT(*) FROM deliveries`) != n {
			t.Fatalf("%s: %d events, %d distinct deliveries; want %d of each, each once", when, e, d, n)
		}
		r, err := db.Receipt(ctx, src.TenantID, src.ID, "big")
		if err != nil || r.ProcessedAt.IsZero() || r.Events != n+1 || r.Duplicates != 1 || r.Stored != n || r.Pending != n {
			t.Fatalf("%s: receipt %+v, %v; want processed, %d events: 1 duplicate, %d stored and pending", when, r, err, n+1, n)
		}
	}
	check("processed")

	// As after a crash between two chunks: the last 700 events never committed, nor the mark.
	err := db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM deliveries WHERE ref_id IN (SELECT id FROM email_events ORDER BY id DESC LIMIT 700)`); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM email_events WHERE id IN (SELECT id FROM email_events ORDER BY id DESC LIMIT 700)`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE inbox SET processed_at = NULL, duplicates = NULL`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if done, err := p.ProcessOnce(ctx); err != nil || done != 1 {
		t.Fatalf("ProcessOnce after the crash = %d, %v", done, err)
	}
	check("done again after a crash between chunks")
}
