// Package store holds every SQL statement of Switchboard. SQLite has one writer, so all writes go
// through one connection and are gathered into shared transactions (group commit, see commit.go);
// reads use a separate pool that never waits for the writer (WAL).
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" driver

	"github.com/switchboard-hub/switchboard/internal/domain"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is an open Switchboard database: one writer connection behind the group committer and a
// pool of read-only connections.
type DB struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	commit *committer
	ckpt   *checkpointer
	dest   *destStatements

	// Created is true when Open found no schema and built it from zero.
	Created bool

	// Clock returns the current time; tests replace it to move the clock.
	Clock func() time.Time
}

// Now is the store's current time (Clock's).
func (db *DB) Now() time.Time { return db.Clock() }

// writerPragmas: busy_timeout first so that every later pragma already waits instead of
// failing on a locked file; synchronous(FULL) because a 200 promises durability (and because the
// writer's VFS, walvfs.go, writes its gathered WAL frames at the commit's sync). A 64 MiB cache
// keeps a 1,000-event transaction from spilling pages to disk before its commit. Pages stay at
// SQLite's 4 KiB (a page_size(16384) that stood here never took effect: journal_mode(WAL) had
// fixed the size first): an event's index entries land on pages all over the indexes, every
// such page is written whole to the WAL and again by the checkpoint, and smaller pages write
// less per event; checkpoints run beside the writer, not in its commits (see
// checkpoint.go); temp_store(MEMORY) keeps statement journals (every INSERT into a
// table with unique indexes has one) off the disk — measured: 7,400 → 14,000 events/s committed.
const writerPragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)&_pragma=temp_store(MEMORY)&_pragma=synchronous(FULL)" +
	"&_pragma=foreign_keys(ON)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)&_txlock=immediate"

// readerPragmas: memory-mapped reads, because a page of events touches thousands of pages and a
// read(2) for each costs as much as decoding it (CSV export ran twice as fast); SQLite maps no
// more than the file.
const readerPragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)&_pragma=query_only(1)&_pragma=mmap_size(1073741824)"

// syncDataOnly makes SQLite commit with fdatasync(2) instead of fsync(2), process-wide, as
// SQLite's own builds for Linux do (the transpiled library keeps the source default). Both wait
// until the WAL's frames, and the file size needed to read them back, are on stable storage, so
// a commit is as durable either way; fdatasync does not also wait for the timestamp update that
// ext4 writes through its journal. Measured with the load harness's 64 single-message clients,
// three pairs in one run: 5,921 / 6,390 / 3,497 → 6,623 / 6,438 / 5,117 messages/s, p99 ack
// lower in each. Where fdatasync is not available (macOS, Windows) SQLite keeps its own sync.
func syncDataOnly() {
	sqlite.Fdatasync(true) // the only error is ErrFdatasyncUnavailable: the default stays
}

// Open opens (creating if needed) the SQLite database at path, applies the embedded migrations
// and starts the group committer. It refuses a database whose schema is newer than this binary.
func Open(ctx context.Context, path string) (*DB, error) {
	if strings.HasPrefix(path, "postgres://") || strings.HasPrefix(path, "postgresql://") {
		return nil, domain.Errorf(domain.ENOTIMPLEMENTED, "PostgreSQL is not supported yet; set SWITCHBOARD_DATABASE_URL to a SQLite file path")
	}
	path = strings.TrimPrefix(path, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, fmt.Errorf("store: empty database path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath()
	syncDataOnly()
	if err := registerWALVFS(); err != nil {
		return nil, err
	}
	writer, err := sql.Open("sqlite", dsn+"?vfs="+walVFSName+"&"+writerPragmas)
	if err != nil {
		return nil, fmt.Errorf("store: open writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	db := &DB{path: path, writer: writer, Clock: time.Now}
	created, err := db.migrate(ctx)
	if err != nil {
		writer.Close()
		return nil, err
	}
	db.Created = created
	// The file holds hashed and sealed secrets: readable by the owner only, like the key files.
	// SQLite gives its -wal and -shm files the database file's mode.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			writer.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// The file exists with WAL mode set, so readers can open it now.
	reader, err := sql.Open("sqlite", dsn+"?"+readerPragmas)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open reader: %w", err)
	}
	n := max(4, 2*runtime.NumCPU())
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	db.reader = reader
	if db.dest, err = prepareDestStatements(ctx, writer, reader); err != nil {
		writer.Close()
		reader.Close()
		return nil, err
	}
	ckpt, err := sql.Open("sqlite", dsn+"?_pragma=busy_timeout(5000)")
	if err != nil {
		writer.Close()
		reader.Close()
		return nil, fmt.Errorf("store: open checkpointer: %w", err)
	}
	ckpt.SetMaxOpenConns(1)
	db.ckpt = newCheckpointer(ckpt, 200*time.Millisecond)
	db.commit = newCommitter(writer, path)
	return db, nil
}

// Close stops the committer (after answering every queued write) and closes both pools.
func (db *DB) Close() error {
	db.commit.close()
	db.ckpt.close()
	db.dest.close()
	err := db.reader.Close()
	if werr := db.writer.Close(); err == nil {
		err = werr
	}
	return err
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Ping checks that the database answers a read, the writer loop is alive, the file is the one
// opened, and the last write did not fail for the database's sake (disk full, I/O errors).
func (db *DB) Ping(ctx context.Context) error {
	if err := db.reader.PingContext(ctx); err != nil {
		return err
	}
	if !db.commit.running() {
		return errors.New("store: writer stopped")
	}
	if db.commit.health.gone() {
		return fmt.Errorf("store: the database file %s was deleted or replaced", db.path)
	}
	if err := db.commit.health.err(); err != nil {
		return fmt.Errorf("store: writes are failing: %v", err)
	}
	return nil
}

// Reader returns the read-only pool, for packages that keep their own queries in store-like
// files of their own.
func (db *DB) Reader() *sql.DB { return db.reader }

// SchemaVersion returns the highest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("store: migration %s: name must start with a number", base)
		}
		b, err := migrationFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("store: two migrations with version %d", ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies each pending migration in its own transaction. created reports whether the
// database had no schema before.
func (db *DB) migrate(ctx context.Context) (created bool, err error) {
	return db.migrateTo(ctx, math.MaxInt)
}

// migrateTo is migrate stopping after version upTo: tests build a database as an older binary
// left it.
func (db *DB) migrateTo(ctx context.Context, upTo int) (created bool, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return false, err
	}
	if _, err := db.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return false, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	var current int
	if err := db.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return false, fmt.Errorf("store: read schema version: %w", err)
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return false, fmt.Errorf("store: database schema version %d is newer than this binary knows (%d); run a newer switchboard", current, latest)
	}
	for _, m := range ms {
		if m.version <= current || m.version > upTo {
			continue
		}
		if err := db.applyMigration(ctx, m); err != nil {
			return false, err
		}
	}
	return current == 0, nil
}

func (db *DB) applyMigration(ctx context.Context, m migration) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("store: migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// Time helpers: times are stored as INTEGER Unix milliseconds (UTC), which sort and compare
// cheaply; the API renders them as ISO-8601.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
