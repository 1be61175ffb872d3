package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

func openHealthDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fill writes rows until a write fails, and returns that failure.
func fill(db *DB) error {
	for i := range 100_000 {
		err := db.Write(context.Background(), func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO tenants (id, name, token_gen, created_at, updated_at) VALUES (?, ?, 1, 0, 0)`,
				fmt.Sprintf("ten_%016d", i), string(make([]byte, 4000)))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// TestDiskFullIsUnavailable: when the database cannot grow (SQLite's max_page_count stands in
// for a full disk), writes fail as EUNAVAILABLE (503 + Retry-After), Ping fails (readyz 503),
// and both recover once there is room again.
func TestDiskFullIsUnavailable(t *testing.T) {
	db := openHealthDB(t)
	var pages int
	db.writer.QueryRow(`PRAGMA page_count`).Scan(&pages)
	if _, err := db.writer.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+8)); err != nil {
		t.Fatal(err)
	}
	err := fill(db)
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("write into a full database: %v (code %q), want EUNAVAILABLE", err, domain.ErrorCode(err))
	}
	if err := db.Ping(context.Background()); err == nil {
		t.Fatal("Ping answers while writes fail")
	}
	if _, err := db.writer.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO tenants (id, name, token_gen, created_at, updated_at) VALUES ('ten_room', 'x', 1, 0, 0)`)
		return err
	}); err != nil {
		t.Fatalf("write once there is room: %v", err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
}

// TestDeletedDatabaseIsUnavailable: a database file deleted under the server must not take
// writes that would vanish at the next start.
func TestDeletedDatabaseIsUnavailable(t *testing.T) {
	db := openHealthDB(t)
	for _, f := range []string{db.path, db.path + "-wal", db.path + "-shm"} {
		os.Remove(f)
	}
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO tenants (id, name, token_gen, created_at, updated_at) VALUES ('ten_gone', 'x', 1, 0, 0)`)
		return err
	})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Fatalf("write after the file was deleted: %v, want EUNAVAILABLE", err)
	}
	if err := db.Ping(context.Background()); err == nil {
		t.Fatal("Ping answers after the file was deleted")
	}
}
