package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// openScratch opens a store in a temporary directory with a table of its own to write to.
func openScratch(t *testing.T) *DB {
	t.Helper()
	db := openHealthDB(t)
	if _, err := db.writer.Exec(`CREATE TABLE scratch (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// insertScratch commits rows [from, to) in one transaction, each with a random-looking key (so
// that the unique index gets entries all over its pages) and size bytes of value.
func insertScratch(t *testing.T, db *DB, from, to, size int) {
	t.Helper()
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		for i := from; i < to; i++ {
			k := sha256Hex([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
			if _, err := tx.Exec(`INSERT INTO scratch (id, k, v) VALUES (?, ?, ?)`, i, k, bytes.Repeat([]byte{byte(i)}, size)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWALWritesAreGathered: the writer's WAL frames reach the file in a few large writes, not
// two writes per frame.
func TestWALWritesAreGathered(t *testing.T) {
	db := openScratch(t)
	appends, writes := walStats.appends.Load(), walStats.writes.Load()
	for i := 0; i < 20; i++ {
		insertScratch(t, db, i*200, (i+1)*200, 300)
	}
	appends, writes = walStats.appends.Load()-appends, walStats.writes.Load()-writes
	if appends < 20*4 {
		t.Fatalf("SQLite made %d writes to the WAL through the VFS in 20 commits; the writer is not on it", appends)
	}
	t.Logf("%d WAL appends, %d writes", appends, writes)
	// Other tests of the package may write at the same time, so the bound is loose: without
	// gathering, every append is a write.
	if writes*4 > appends {
		t.Fatalf("%d WAL appends became %d writes; want them gathered", appends, writes)
	}
}

// TestWALCommitIsOnFileWhenAcknowledged: right after each commit, with the writer still open,
// a reader sees it, and a copy of the files as they are (what a crash at that moment leaves)
// opens with every committed row and passes the integrity check. Transactions larger than the
// buffer, and one rolled back, are among them.
func TestWALCommitIsOnFileWhenAcknowledged(t *testing.T) {
	db := openScratch(t)
	n := 0
	for round, size := range []int{100, 4000, 300, 20000, 50} {
		insertScratch(t, db, n, n+150, size) // 20,000 × 150: 3 MB, many times the 128 KiB buffer
		n += 150
		if round == 2 {
			rollBack(t, db, 2000, 3000)
		}
		checkCommitted(t, db, n)
	}
}

// rollBack runs a write of rows rows of size bytes each that fails, so SQLite rolls it back.
func rollBack(t *testing.T, db *DB, rows, size int) {
	t.Helper()
	rollback := errors.New("rolled back")
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		for i := 0; i < rows; i++ {
			if _, err := tx.Exec(`INSERT INTO scratch (k, v) VALUES (?, zeroblob(?))`, "rb"+sha256Hex([]byte{byte(i), byte(i >> 8)}), size); err != nil {
				return err
			}
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("rolled-back write: %v", err)
	}
}

// checkCommitted checks that a reader counts want rows, and that a copy of the files as they
// stand (what a crash at this moment leaves) holds want rows and passes the integrity check.
func checkCommitted(t *testing.T, db *DB, want int) {
	t.Helper()
	var got int
	if err := db.reader.QueryRow(`SELECT COUNT(*) FROM scratch`).Scan(&got); err != nil || got != want {
		t.Fatalf("a reader counts %d rows (%v), want %d", got, err, want)
	}
	// The WAL first: frames a checkpoint copies into the database file meanwhile are in both.
	dir := t.TempDir()
	copyFile(t, db.path+"-wal", filepath.Join(dir, "copy.db-wal"))
	copyFile(t, db.path, filepath.Join(dir, "copy.db"))
	c, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ok string
	if err := c.QueryRow(`SELECT COUNT(*) FROM scratch`).Scan(&got); err != nil || got != want {
		t.Fatalf("the files as they stand hold %d rows (%v), want %d", got, err, want)
	}
	if err := c.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity check of the copy: %q %v", ok, err)
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if errors.Is(err, os.ErrNotExist) {
		return // a WAL truncated away: the database file holds everything
	}
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWALSpilledAndRolledBack: a transaction too large for the writer's page cache writes
// frames to the WAL before its commit; rolled back, they stay behind the valid frames (buffered
// or written), and neither the next commits, a truncating checkpoint in between, nor a copy of
// the files as they stand see them.
func TestWALSpilledAndRolledBack(t *testing.T) {
	db := openScratch(t)
	if _, err := db.writer.Exec(`PRAGMA cache_size = 20`); err != nil { // pages: spills within a few rows
		t.Fatal(err)
	}
	t.Cleanup(func() { db.writer.Exec(`PRAGMA cache_size = -65536`) })
	insertScratch(t, db, 0, 100, 500)
	appends := walStats.appends.Load()
	rollBack(t, db, 3000, 2000)
	if walStats.appends.Load()-appends < 100 {
		t.Fatal("the rolled-back transaction did not spill to the WAL; the test needs a smaller cache")
	}
	insertScratch(t, db, 100, 200, 500)
	if _, err := db.writer.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	insertScratch(t, db, 200, 300, 500)
	checkCommitted(t, db, 300)
}
