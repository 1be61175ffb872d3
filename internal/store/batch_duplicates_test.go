package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// duplicatesBatch stores a batch of the given event ids (all of type delivery, not sent) the way
// the processor does and returns what CommitProcessed counted.
func duplicatesBatch(t *testing.T, db *DB, tenantID, sourceID, batchID string, eventIDs ...string) *ProcessedBatch {
	t.Helper()
	ctx := context.Background()
	b := &InboxBatch{TenantID: tenantID, SourceID: sourceID, BatchID: batchID, Body: []byte(`[]`)}
	if _, err := db.AddBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	p := &ProcessedBatch{Batch: b, Target: "segment"}
	for _, id := range eventIDs {
		p.Events = append(p.Events, &EmailEvent{EventID: id, Type: "delivery", Wrapper: "message_event", Body: []byte(`{}`), Status: EventNotSent})
	}
	if err := db.CommitProcessed(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// duplicatesFixture opens a fresh database with one tenant and one source.
func duplicatesFixture(t *testing.T) (*DB, *Tenant, *Source) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "dup.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tn, err := db.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{ID: "src_aaaaaaaaaaaaaaaa", TenantID: tn.ID, Name: "p", Auth: "basic"}
	if err := db.CreateSource(ctx, src, "u", "h"); err != nil {
		t.Fatal(err)
	}
	return db, tn, src
}

// TestCommitProcessedCountsDuplicates: an event id seen in an earlier batch or earlier in the same
// batch is a duplicate; processing a batch a second time does not make its own events duplicates.
func TestCommitProcessedCountsDuplicates(t *testing.T) {
	ctx := context.Background()
	db, tn, src := duplicatesFixture(t)
	p1 := duplicatesBatch(t, db, tn.ID, src.ID, "b1", "e1", "e2", "e1", "e1")
	if p1.Inserted != 2 || p1.Duplicates != 2 {
		t.Fatalf("b1: inserted %d, duplicates %d; want 2 and 2 (e1 twice again in the same batch)", p1.Inserted, p1.Duplicates)
	}
	p2 := duplicatesBatch(t, db, tn.ID, src.ID, "b2", "e2", "e3")
	if p2.Inserted != 1 || p2.Duplicates != 1 {
		t.Fatalf("b2: inserted %d, duplicates %d; want 1 and 1 (e2 came in b1)", p2.Inserted, p2.Duplicates)
	}
	// b1 processed again, as after a lost processed mark: its own rows are not duplicates.
	if err := db.CommitProcessed(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if p1.Inserted != 0 || p1.Duplicates != 2 {
		t.Fatalf("b1 again: inserted %d, duplicates %d; want 0 and 2", p1.Inserted, p1.Duplicates)
	}
	for batch, want := range map[string]int{"b1": 2, "b2": 1} {
		r, err := db.Receipt(ctx, tn.ID, src.ID, batch)
		if err != nil {
			t.Fatal(err)
		}
		if r.Duplicates != want || r.Duplicates+r.Stored != r.Events {
			t.Fatalf("receipt %s: %+v; want %d duplicates and events = duplicates + stored", batch, r, want)
		}
	}
}

// TestMigration0007FillsExistingBatches runs migration 0007 on a database whose inbox has no
// duplicates column yet, as one written by an older binary: processed batches get their count
// from their stored events, unprocessed ones get theirs when they are processed.
func TestMigration0007FillsExistingBatches(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "mig.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tn, _ := db.CreateTenant(ctx, "A")
	src := &Source{ID: "src_bbbbbbbbbbbbbbbb", TenantID: tn.ID, Name: "p", Auth: "basic"}
	if err := db.CreateSource(ctx, src, "u", "h"); err != nil {
		t.Fatal(err)
	}
	duplicatesBatch(t, db, tn.ID, src.ID, "old-1", "e1", "e1", "e2")
	duplicatesBatch(t, db, tn.ID, src.ID, "old-2", "e1", "e2", "e3", "e3")
	pending := &InboxBatch{TenantID: tn.ID, SourceID: src.ID, BatchID: "old-3", Body: []byte(`[]`)}
	if _, err := db.AddBatch(ctx, pending); err != nil {
		t.Fatal(err)
	}

	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var m0007 *migration
	for i := range ms {
		if ms[i].version == 7 {
			m0007 = &ms[i]
		}
	}
	if m0007 == nil {
		t.Fatal("no migration 0007")
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`ALTER TABLE inbox DROP COLUMN duplicates`); err != nil {
			return err
		}
		_, err := tx.Exec(m0007.sql)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for batch, want := range map[string]int{"old-1": 1, "old-2": 3} {
		r, err := db.Receipt(ctx, tn.ID, src.ID, batch)
		if err != nil {
			t.Fatal(err)
		}
		if r.Duplicates != want || r.Duplicates+r.Stored != r.Events {
			t.Fatalf("receipt %s after the migration: %+v; want %d duplicates", batch, r, want)
		}
	}
	var isNull bool
	if err := db.Reader().QueryRow(`SELECT duplicates IS NULL FROM inbox WHERE batch_id = 'old-3'`).Scan(&isNull); err != nil || !isNull {
		t.Fatalf("unprocessed batch: duplicates IS NULL = %v, %v; want true until it is processed", isNull, err)
	}
	p := &ProcessedBatch{Batch: pending, Target: "segment", Events: []*EmailEvent{
		{EventID: "e3", Type: "delivery", Wrapper: "message_event", Body: []byte(`{}`), Status: EventNotSent},
	}}
	if err := db.CommitProcessed(ctx, p); err != nil || p.Duplicates != 1 {
		t.Fatalf("old-3 processed after the migration: %d duplicates, %v; want 1", p.Duplicates, err)
	}
}

// TestGroupedInsertLinksEachDelivery: events go in by groups of insertGroup rows; across and
// inside groups, the first of two events with one id is stored and queued, later ones and ids
// stored before are not, and every delivery points at the row of its own event and has its own
// event's payload.
func TestGroupedInsertLinksEachDelivery(t *testing.T) {
	ctx := context.Background()
	db, tn, src := duplicatesFixture(t)
	duplicatesBatch(t, db, tn.ID, src.ID, "earlier", "id-5", "id-40") // stored before, never queued
	b := &InboxBatch{TenantID: tn.ID, SourceID: src.ID, BatchID: "groups", Body: []byte(`[]`)}
	if _, err := db.AddBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	p := &ProcessedBatch{Batch: b, Target: "segment", MaxAge: time.Hour}
	const n, distinct = 3*insertGroup + 7, 2*insertGroup + 3 // ids repeat within a group and across groups
	for i := range n {
		id := fmt.Sprintf("id-%d", i%distinct)
		p.Events = append(p.Events, &EmailEvent{EventID: id, Type: "delivery", Wrapper: "message_event", Body: []byte(`{}`),
			Status: EventQueued, SegmentMessageID: fmt.Sprintf("sp-%d", i), Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`)})
	}
	if err := db.CommitProcessed(ctx, p); err != nil {
		t.Fatal(err)
	}
	if want := distinct - 2; p.Inserted != want || p.Queued != want || p.Duplicates != n-want {
		t.Fatalf("inserted %d, queued %d, duplicates %d; want %d, %d, %d", p.Inserted, p.Queued, p.Duplicates, want, want, n-want)
	}
	rows, err := db.Reader().Query(`SELECT e.event_id, d.message_id, p.payload FROM deliveries d JOIN email_events e ON e.id = d.ref_id
		JOIN delivery_payloads p ON p.delivery_id = d.id WHERE e.inbox_id = ?`, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var eventID, messageID, payload string
		if err := rows.Scan(&eventID, &messageID, &payload); err != nil {
			t.Fatal(err)
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(eventID, "id-"))
		if messageID != fmt.Sprintf("sp-%d", i) { // the first event with that id, not a later one
			t.Errorf("event %s has the delivery of %s", eventID, messageID)
		}
		if want := `{"n":` + strconv.Itoa(i) + `}`; payload != want { // each delivery's own payload row
			t.Errorf("delivery %s has payload %s, want %s", messageID, payload, want)
		}
		seen++
	}
	if seen != distinct-2 {
		t.Fatalf("%d deliveries linked to this batch's events, want %d", seen, distinct-2)
	}
}
