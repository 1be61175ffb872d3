package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"modernc.org/sqlite"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// MustOpenDB opens a fresh database in a temporary directory and closes it when the test ends.
func MustOpenDB(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "switchboard.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestOpenCommitsWithFdatasync: Open switches SQLite's commits to fdatasync where the platform
// has it (see syncDataOnly), whatever the process had set before.
func TestOpenCommitsWithFdatasync(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("fdatasync is switched on Linux; elsewhere SQLite keeps its own sync")
	}
	if _, err := sqlite.Fdatasync(false); err != nil {
		t.Fatal(err)
	}
	MustOpenDB(t)
	if !sqlite.FdatasyncEnabled() {
		t.Fatal("after Open, SQLite still commits with fsync")
	}
}

func TestOpenMigratesFromZeroAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "switchboard.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !db.Created {
		t.Fatal("first open of a new file should report Created")
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v; want 0600", f, fi.Mode().Perm())
		}
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil || v < 1 {
		t.Fatalf("schema version = %d, %v; want ≥ 1", v, err)
	}
	tn, err := db.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Created {
		t.Fatal("reopening an existing database must not report Created")
	}
	if v2, _ := db.SchemaVersion(ctx); v2 != v {
		t.Fatalf("schema version changed on reopen: %d → %d", v, v2)
	}
	got, err := db.Tenant(ctx, tn.ID)
	if err != nil || got.Name != "Acme" {
		t.Fatalf("tenant after reopen = %+v, %v", got, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999999, 'future.sql', 0)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := store.Open(ctx, path); err == nil {
		t.Fatal("Open accepted a database with a newer schema")
	}
}

func TestOpenRefusesPostgresForNow(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://localhost/switchboard")
	if domain.ErrorCode(err) != domain.ENOTIMPLEMENTED {
		t.Fatalf("err = %v; want not_implemented", err)
	}
}

func createItems(t testing.TB, db *store.DB) {
	t.Helper()
	err := db.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TABLE items (id INTEGER PRIMARY KEY, tenant_id TEXT REFERENCES tenants (id) DEFERRABLE INITIALLY DEFERRED)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitQueued waits until n foreground writes, and bulk background ones, wait for the writer
// (behind holdWriter's).
func waitQueued(t *testing.T, db *store.DB, n int64, bulk ...int64) {
	t.Helper()
	wantBulk := int64(0)
	if len(bulk) > 0 {
		wantBulk = bulk[0]
	}
	waitFor(t, fmt.Sprintf("%d foreground and %d background writes to queue", n, wantBulk), func() bool {
		fore, back := db.WriterStats()
		return fore.Waiting >= n && back.Waiting >= wantBulk
	})
}

// holdWriter occupies the writer until release is closed, so that writes queue up behind it and
// are gathered into the next transaction.
func holdWriter(t *testing.T, db *store.DB) (release func(), done <-chan error) {
	started, unblock, errc := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		errc <- db.Write(context.Background(), func(*sql.Tx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() { close(unblock) }, errc
}

func TestGroupCommitAnswersAfterCommit(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	ctx := context.Background()
	release, held := holdWriter(t, db)

	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = db.Write(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, i)
				return err
			}); errs[i] != nil {
				return
			}
			// Answered: the row must already be visible to another connection.
			var seen int
			if err := db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM items WHERE id = ?`, i).Scan(&seen); err != nil || seen != 1 {
				errs[i] = fmt.Errorf("write %d answered before its row was committed (seen=%d, err=%v)", i, seen, err)
			}
		}()
	}
	waitQueued(t, db, n) // the writers queue behind the held transaction
	before, _ := db.CommitStats()
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after, writes := db.CommitStats()
	if txs := after - before; txs >= n {
		t.Fatalf("%d writes took %d transactions; group commit should share them", n, txs)
	}
	t.Logf("%d writes in %d transactions (%d writes in all)", n, after-before, writes)
}

func TestGroupCommitIsolatesCallerErrors(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	ctx := context.Background()
	release, held := holdWriter(t, db)

	boom := errors.New("caller's own failure")
	var wg sync.WaitGroup
	results := make([]error, 3)
	for i, fn := range []store.WriteFunc{
		func(tx *sql.Tx) error { _, err := tx.Exec(`INSERT INTO items (id) VALUES (1)`); return err },
		func(tx *sql.Tx) error {
			if _, err := tx.Exec(`INSERT INTO items (id) VALUES (2)`); err != nil {
				return err
			}
			return boom // row 2 must be rolled back, row 1 and 3 kept
		},
		func(tx *sql.Tx) error { panic("a buggy caller") },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = db.Write(ctx, fn) }()
	}
	waitQueued(t, db, 3)
	release()
	<-held
	wg.Wait()
	if results[0] != nil || !errors.Is(results[1], boom) || results[2] == nil {
		t.Fatalf("results = %v; want nil, the caller's error, a panic error", results)
	}
	var ids []int
	rows, err := db.Reader().Query(`SELECT id FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if fmt.Sprint(ids) != "[1]" {
		t.Fatalf("rows = %v; want [1]", ids)
	}
	// The writer survived the panic.
	if err := db.Write(ctx, func(tx *sql.Tx) error { _, err := tx.Exec(`INSERT INTO items (id) VALUES (4)`); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommitFailedCommitAnswersEveryCaller(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	ctx := context.Background()
	release, held := holdWriter(t, db)

	const n = 8
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = db.Write(ctx, func(tx *sql.Tx) error {
				// Caller 0 breaks a deferred foreign key: SQLite refuses the COMMIT itself.
				tenant := any(nil)
				if i == 0 {
					tenant = "ten_missing"
				}
				_, err := tx.Exec(`INSERT INTO items (id, tenant_id) VALUES (?, ?)`, 100+i, tenant)
				return err
			})
		}()
	}
	waitQueued(t, db, n)
	release()
	<-held
	wg.Wait()
	failed := 0
	for _, err := range results {
		if err != nil {
			failed++
		}
	}
	var rowsLeft int
	db.Reader().QueryRow(`SELECT COUNT(*) FROM items`).Scan(&rowsLeft)
	// Every caller that shared the failed transaction got an error and none of its rows exist;
	// every caller told "ok" has its row. (With goroutine scheduling, some callers may have
	// landed in a later transaction of their own.)
	if failed == 0 || failed+rowsLeft != n {
		t.Fatalf("%d callers failed and %d rows exist; want every caller either failed or committed", failed, rowsLeft)
	}
	if results[0] == nil {
		t.Fatal("the caller that broke the commit was told it succeeded")
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Write(context.Background(), func(*sql.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("err = %v; want ErrClosed", err)
	}
}

func TestTenantsPageAndDelete(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := db.CreateTenant(ctx, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	p := store.Page{Limit: 2}
	for {
		ts, total, err := db.Tenants(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 {
			t.Fatalf("total = %d", total)
		}
		for _, tn := range ts {
			seen = append(seen, tn.Name)
		}
		if len(ts) < p.Limit {
			break
		}
		p.AfterTime, p.AfterID = ts[len(ts)-1].CreatedAt, ts[len(ts)-1].ID
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %v; want 5 tenants once each", seen)
	}
	ts, _, _ := db.Tenants(ctx, store.Page{Limit: 10})
	if err := db.DeleteTenant(ctx, ts[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Tenant(ctx, ts[0].ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("deleted tenant still readable: %v", err)
	}
	if err := db.DeleteTenant(ctx, ts[0].ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("second delete: %v; want not_found", err)
	}
}

func TestSegmentKeyVersionsAndCascade(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, _ := db.CreateTenant(ctx, "Acme")
	k1, err := db.PutSegmentKey(ctx, store.SegmentKey{TenantID: tn.ID, WriteKeyEnc: []byte("a"), Hint: "…aaaa", Endpoint: "https://api.segment.io", MaxRPS: 50})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := db.PutSegmentKey(ctx, store.SegmentKey{TenantID: tn.ID, WriteKeyEnc: []byte("b"), Hint: "…bbbb", Endpoint: "https://api.segment.io", MaxRPS: 60})
	if err != nil {
		t.Fatal(err)
	}
	if k2.Version != k1.Version+1 {
		t.Fatalf("versions %d then %d; a rotation must bump the version", k1.Version, k2.Version)
	}
	got, err := db.SegmentKey(ctx, tn.ID)
	if err != nil || string(got.WriteKeyEnc) != "b" || got.MaxRPS != 60 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := db.PutSegmentKey(ctx, store.SegmentKey{TenantID: "ten_nope", WriteKeyEnc: []byte("c")}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("key for a missing tenant: %v; want not_found", err)
	}
	if err := db.DeleteTenant(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SegmentKey(ctx, tn.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("write key survived its tenant: %v", err)
	}
}

func TestWriteBulkRunsAlone(t *testing.T) {
	db := MustOpenDB(t)
	createItems(t, db)
	ctx := context.Background()
	release, held := holdWriter(t, db)
	var wg sync.WaitGroup
	results := make([]error, 5)
	boom := errors.New("bulk failed")
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 2 {
				results[i] = db.WriteBulk(ctx, func(tx *sql.Tx) error {
					for j := range 100 {
						if _, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, 1000+j); err != nil {
							return err
						}
					}
					return boom
				})
				return
			}
			results[i] = db.Write(ctx, func(tx *sql.Tx) error { _, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, i); return err })
		}()
	}
	waitQueued(t, db, 4, 1)
	before, _ := db.CommitStats()
	release()
	<-held
	wg.Wait()
	after, _ := db.CommitStats()
	for i, err := range results {
		if i == 2 && !errors.Is(err, boom) || i != 2 && err != nil {
			t.Fatalf("results = %v", results)
		}
	}
	var n int
	db.Reader().QueryRow(`SELECT COUNT(*) FROM items`).Scan(&n)
	if n != 4 {
		t.Fatalf("%d rows; want the 4 small writes and nothing of the failed bulk write", n)
	}
	if after-before < 2 {
		t.Fatalf("%d transactions after the held one; the bulk write must not share one", after-before)
	}
}

func TestCloseCheckpointsAndTruncatesTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sb.db")
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	createItems(t, db)
	for i := range 50 {
		if err := db.Write(context.Background(), func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, i)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("WAL while open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("WAL after Close is %d bytes; want it checkpointed and truncated", fi.Size())
	}
	db, err = store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	db.Reader().QueryRow(`SELECT COUNT(*) FROM items`).Scan(&n)
	if n != 50 {
		t.Fatalf("%d rows after reopening; want 50", n)
	}
}
