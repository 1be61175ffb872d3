package store

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestMigration0010MovesBodies opens a database as version 9 left it, with one processed and one
// waiting batch in the inbox, and checks that after migration 0010 the waiting batch is handed
// to the processor with its body, the backlog bound still counts its bytes, and retention
// still deletes a processed batch, body and all.
func TestMigration0010MovesBodies(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	w, err := sql.Open("sqlite", "file:"+path+"?"+writerPragmas)
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{writer: w}
	if _, err := old.migrateTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	waiting, done := bytes.Repeat([]byte("w"), 5000), []byte(`[{"msys":{}}]`)
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('ten_a', 'A', 1, 1)`,
		`INSERT INTO sources (id, tenant_id, name, auth, settings, created_at, updated_at) VALUES ('src_a', 'ten_a', 'p', 'basic', '{}', 1, 1)`,
	} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if _, err := w.Exec(`INSERT INTO inbox (tenant_id, source_id, batch_id, body, received_at, processed_at, events, duplicates)
		VALUES ('ten_a', 'src_a', 'b-done', ?, 1000, 2000, 1, 0), ('ten_a', 'src_a', 'b-waiting', ?, 3000, NULL, NULL, NULL)`, done, waiting); err != nil {
		t.Fatal(err)
	}
	w.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs, err := db.UnprocessedBatches(ctx, 0, 10)
	if err != nil || len(bs) != 1 || bs[0].BatchID != "b-waiting" || !bytes.Equal(bs[0].Body, waiting) {
		t.Fatalf("waiting batches after the migration: %v, %v; want b-waiting with its %d bytes", bs, err, len(waiting))
	}
	if n, err := db.InboxBacklogBytes(ctx, "ten_a"); err != nil || n != int64(len(waiting)) {
		t.Fatalf("backlog bytes after the migration: %d, %v; want %d", n, err, len(waiting))
	}
	var pruned Pruned
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := pruneBatchesTx(tx, "ten_a", 2000, &pruned)
		return err
	}); err != nil || pruned.Batches != 1 {
		t.Fatalf("pruning the processed batch: %d pruned, %v; want 1", pruned.Batches, err)
	}
	var batches, bodies int
	if err := db.Reader().QueryRow(`SELECT (SELECT COUNT(*) FROM inbox), (SELECT COUNT(*) FROM inbox_bodies)`).Scan(&batches, &bodies); err != nil {
		t.Fatal(err)
	}
	if batches != 1 || bodies != 1 {
		t.Fatalf("after pruning the processed batch: %d batches, %d bodies; want 1 and 1", batches, bodies)
	}
}
