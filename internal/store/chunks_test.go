package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// chunkedBatch returns a batch of the given event ids, each queued for Segment, the way the
// processor makes it from the raw batch (again after a restart: fresh events, no ids).
func chunkedBatch(b *InboxBatch, ids ...string) *ProcessedBatch {
	p := &ProcessedBatch{Batch: b, Target: "segment", MaxAge: time.Hour}
	for _, id := range ids {
		p.Events = append(p.Events, &EmailEvent{EventID: id, Type: "delivery", Wrapper: "message_event", Body: []byte(`{"event_id":"` + id + `"}`),
			Status: EventQueued, SegmentMessageID: "sp-" + id, Payload: []byte(`{}`)})
	}
	return p
}

func openChunkDB(t *testing.T) (*DB, *Source) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "chunks.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tn, err := db.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{ID: "src_chunkchunkchunk", TenantID: tn.ID, Name: "p", Auth: "basic"}
	if err := db.CreateSource(ctx, src, "u", "h"); err != nil {
		t.Fatal(err)
	}
	return db, src
}

func countRows(t *testing.T, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.reader.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestChunkedCommitRedoesTheRestAfterAFailure: a batch whose third chunk fails (as when the
// process dies between two chunks) is left unprocessed with its first chunks committed; done
// again from the start, it stores and queues only what was missing, each event once, and its
// receipt counts the one true duplicate.
func TestChunkedCommitRedoesTheRestAfterAFailure(t *testing.T) {
	db, src := openChunkDB(t)
	ctx := context.Background()
	b := &InboxBatch{TenantID: src.TenantID, SourceID: src.ID, BatchID: "b1", Body: []byte(`[]`)}
	if _, err := db.AddBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	// e1 comes twice, in the first and the second chunk: one duplicate.
	ids := []string{"e1", "e2", "e3", "e4", "e5", "e1", "e7", "e8", "e9", "e10"}
	lim := chunkLimits{events: 3, bytes: 1 << 20, time: time.Hour}

	first := chunkedBatch(b, ids...)
	first.Events[7].Body = nil // NOT NULL: the third chunk (e7, e8, e9) fails
	if err := db.commitProcessed(ctx, first, lim); err == nil {
		t.Fatal("the failing chunk was committed")
	}
	if first.Chunks != 2 {
		t.Fatalf("%d chunks committed before the failure; want 2", first.Chunks)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM inbox WHERE id = ? AND processed_at IS NULL`, b.ID); n != 1 {
		t.Fatal("the batch was marked processed before its last chunk")
	}
	if e, d := countRows(t, db, `SELECT COUNT(*) FROM email_events`), countRows(t, db, `SELECT COUNT(*) FROM deliveries`); e != 5 || d != 5 {
		t.Fatalf("after two chunks: %d events, %d deliveries; want 5 and 5 (e1–e5, e1 again skipped)", e, d)
	}

	again := chunkedBatch(b, ids...)
	if err := db.commitProcessed(ctx, again, lim); err != nil {
		t.Fatal(err)
	}
	if again.Inserted != 4 || again.Queued != 4 || again.Duplicates != 1 || again.Chunks != 4 {
		t.Fatalf("done again: inserted %d, queued %d, duplicates %d in %d chunks; want 4, 4, 1 in 4",
			again.Inserted, again.Queued, again.Duplicates, again.Chunks)
	}
	if e := countRows(t, db, `SELECT COUNT(DISTINCT event_id) FROM email_events`); e != 9 || countRows(t, db, `SELECT COUNT(*) FROM email_events`) != 9 {
		t.Fatalf("%d distinct events; want 9, each once", e)
	}
	if d := countRows(t, db, `SELECT COUNT(DISTINCT message_id) FROM deliveries`); d != 9 || countRows(t, db, `SELECT COUNT(*) FROM deliveries`) != 9 {
		t.Fatalf("%d distinct deliveries; want 9, each once", d)
	}
	r, err := db.Receipt(ctx, src.TenantID, src.ID, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if r.ProcessedAt.IsZero() || r.Events != 10 || r.Duplicates != 1 || r.Stored != 9 || r.Pending != 9 {
		t.Fatalf("receipt %+v; want processed, 10 events: 1 duplicate, 9 stored and pending", r)
	}
}

// TestChunkLimits: a chunk stops at its event count, at its bytes, once its time is up and
// when a foreground write waits, but always takes at least one event.
func TestChunkLimits(t *testing.T) {
	tests := []struct {
		name       string
		lim        chunkLimits
		body       int
		events     int
		wantChunks int
	}{
		{"events", chunkLimits{events: 4, bytes: 1 << 30, time: time.Hour}, 10, 10, 3},
		{"bytes", chunkLimits{events: 1000, bytes: 2500, time: time.Hour}, 1000, 5, 3},
		{"one event over the bytes", chunkLimits{events: 1000, bytes: 100, time: time.Hour}, 1000, 3, 3},
		{"time", chunkLimits{events: 1000, bytes: 1 << 30, time: 0}, 10, 4, 4},
		{"a foreground write waits", chunkLimits{events: 1000, bytes: 1 << 30, time: time.Hour, waiting: func() bool { return true }}, 10, 4, 4},
		{"no foreground write waits", chunkLimits{events: 1000, bytes: 1 << 30, time: time.Hour, waiting: func() bool { return false }}, 10, 4, 1},
		{"empty batch", chunkLimits{events: 4, bytes: 1 << 30, time: time.Hour}, 10, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, src := openChunkDB(t)
			ctx := context.Background()
			b := &InboxBatch{TenantID: src.TenantID, SourceID: src.ID, BatchID: "b", Body: []byte(`[]`)}
			if _, err := db.AddBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for i := range tt.events {
				ids = append(ids, fmt.Sprintf("e%d", i))
			}
			p := chunkedBatch(b, ids...)
			for _, e := range p.Events {
				e.Body = make([]byte, tt.body)
			}
			if err := db.commitProcessed(ctx, p, tt.lim); err != nil {
				t.Fatal(err)
			}
			if p.Chunks != tt.wantChunks || p.Inserted != tt.events || p.Queued != tt.events {
				t.Fatalf("%d events in %d chunks, %d queued; want %d in %d", p.Inserted, p.Chunks, p.Queued, tt.events, tt.wantChunks)
			}
			if n := countRows(t, db, `SELECT COUNT(*) FROM inbox WHERE id = ? AND processed_at IS NOT NULL AND events = ? AND duplicates = 0`, b.ID, tt.events); n != 1 {
				t.Fatal("the batch is not marked processed with its count")
			}
		})
	}
}
