package store

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// openFromVersion creates a database as the binary of schema version v left it, with tenant
// ten_a and its source src_a and then fill (run with args), and opens it with this binary.
func openFromVersion(t *testing.T, v int, fill string, args ...any) *DB {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	w, err := sql.Open("sqlite", "file:"+path+"?"+writerPragmas)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	if _, err := (&DB{writer: w}).migrateTo(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('ten_a', 'A', 1, 1)`,
		`INSERT INTO sources (id, tenant_id, name, auth, settings, created_at, updated_at) VALUES ('src_a', 'ten_a', 'p', 'basic', '{}', 1, 1)`,
	} {
		if _, err := w.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if _, err := w.Exec(fill, args...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMigration0010MovesBodies opens a database as version 9 left it, with one processed and one
// waiting batch in the inbox, and checks that after migration 0010 the waiting batch is handed
// to the processor with its body, the backlog bound still counts its bytes, and retention
// still deletes a processed batch, body and all.
func TestMigration0010MovesBodies(t *testing.T) {
	ctx := context.Background()
	waiting, done := bytes.Repeat([]byte("w"), 5000), []byte(`[{"msys":{}}]`)
	db := openFromVersion(t, 9, `INSERT INTO inbox (tenant_id, source_id, batch_id, body, received_at, processed_at, events, duplicates)
		VALUES ('ten_a', 'src_a', 'b-done', ?, 1000, 2000, 1, 0), ('ten_a', 'src_a', 'b-waiting', ?, 3000, NULL, NULL, NULL)`, done, waiting)
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

// TestMigration0011MovesPayloads opens a database as version 10 left it, with two pending
// deliveries, and checks that after migration 0011 a claim and the admin list give each its own
// payload, and that deleting a delivery deletes its payload.
func TestMigration0011MovesPayloads(t *testing.T) {
	ctx := context.Background()
	db := openFromVersion(t, 10, `INSERT INTO deliveries (tenant_id, target, origin_id, message_id, payload, status, next_at, expires_at, created_at, updated_at)
		VALUES ('ten_a', 'segment', 'src_a', 'm1', '{"n":1}', 'pending', 1, 9e15, 1, 1), ('ten_a', 'segment', 'src_a', 'm2', '{"n":2}', 'pending', 1, 9e15, 1, 1)`)
	listed, _, err := db.Deliveries(ctx, DeliveryFilter{TenantID: "ten_a", Limit: 10})
	if err != nil || len(listed) != 2 {
		t.Fatalf("deliveries after the migration: %v, %v; want 2", listed, err)
	}
	claimed, err := db.ClaimDeliveries(ctx, "segment", "ten_a", 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed after the migration: %v, %v; want 2", claimed, err)
	}
	for i, ds := range [][]*Delivery{claimed, listed} {
		for _, d := range ds {
			want := map[string]string{"m1": `{"n":1}`, "m2": `{"n":2}`}[d.MessageID]
			if string(d.Payload) != want {
				t.Fatalf("%s (read %d): payload %s; want %s", d.MessageID, i, d.Payload, want)
			}
		}
	}
	if claimed[0].Status != "sending" || claimed[0].Attempts != 1 {
		t.Fatalf("claimed row: status %s, %d attempts; want sending, 1", claimed[0].Status, claimed[0].Attempts)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM deliveries WHERE message_id = 'm1'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var payloads int
	if err := db.Reader().QueryRow(`SELECT COUNT(*) FROM delivery_payloads`).Scan(&payloads); err != nil || payloads != 1 {
		t.Fatalf("payloads after deleting one of two deliveries: %d, %v; want 1", payloads, err)
	}
}
