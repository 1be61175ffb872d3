package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Write once the database is closing.
var ErrClosed = errors.New("store: database is closed")

// maxGroup bounds how many writes share one transaction, so that one commit never holds the
// writer for long and the callers at the front are not kept waiting by those at the back.
const maxGroup = 512

// WriteFunc is one caller's part of a shared transaction. It must do only database work: it runs
// on the writer goroutine while every other writer waits.
type WriteFunc func(tx *sql.Tx) error

type writeRequest struct {
	ctx   context.Context
	fn    WriteFunc
	done  chan error
	alone bool // runs in a transaction of its own (see WriteBulk)
}

// committer is the group-commit loop: it owns the one writer connection, takes the writes that
// queued up while the previous transaction committed, runs them in one transaction (each under
// its own savepoint, so one caller's failure does not undo the others) and answers each caller
// only after COMMIT returned.
type committer struct {
	db      *sql.DB
	reqs    chan *writeRequest // unbuffered: a request is either taken by the loop or refused
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once
	alive   atomic.Bool

	// Commits and Grouped count transactions and the writes they carried, for metrics and tests.
	commits atomic.Int64
	grouped atomic.Int64

	wal        string    // the WAL file, whose size truncateWAL watches
	walChecked time.Time // when truncateWAL last looked

	health *health
}

func newCommitter(db *sql.DB, path string) *committer {
	c := &committer{db: db, wal: path + "-wal", health: newHealth(path), reqs: make(chan *writeRequest), quit: make(chan struct{}), stopped: make(chan struct{})}
	c.alive.Store(true)
	go c.loop()
	return c
}

// Write runs fn inside a transaction shared with other concurrent writers and returns after that
// transaction committed (nil) or failed (the error). fn's own error rolls back only fn's part.
func (db *DB) Write(ctx context.Context, fn WriteFunc) error {
	return db.write(ctx, fn, false)
}

// WriteBulk is Write for a large write (thousands of rows): it runs in a transaction of its own.
// Inside a shared transaction each caller runs under a savepoint, and SQLite's statement journal
// then grows with every row of the savepoint, making a large write quadratic; alone it needs none.
func (db *DB) WriteBulk(ctx context.Context, fn WriteFunc) error {
	return db.write(ctx, fn, true)
}

func (db *DB) write(ctx context.Context, fn WriteFunc, alone bool) error {
	c := db.commit
	r := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1), alone: alone}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return ErrClosed
	}
	// Once taken, wait for the outcome even if ctx ends: the caller must not be told "failed"
	// about a write that then commits.
	return <-r.done
}

// CommitStats reports how many transactions the committer ran and how many writes they carried.
func (db *DB) CommitStats() (commits, writes int64) {
	return db.commit.commits.Load(), db.commit.grouped.Load()
}

func (c *committer) running() bool { return c.alive.Load() }

func (c *committer) close() {
	c.once.Do(func() { close(c.quit) })
	<-c.stopped
}

func (c *committer) loop() {
	defer close(c.stopped)
	defer c.alive.Store(false)
	batch := make([]*writeRequest, 0, maxGroup)
	var held *writeRequest // a bulk write taken while gathering: it goes next, alone
	for {
		if held != nil {
			batch, held = append(batch[:0], held), nil
		} else {
			select {
			case r := <-c.reqs:
				batch = append(batch[:0], r)
			case <-c.quit:
				return
			}
		}
	gather:
		for len(batch) < maxGroup && !batch[0].alone {
			select {
			case r := <-c.reqs:
				if r.alone {
					held = r
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		c.run(batch)
		c.truncateWAL()
	}
}

func (c *committer) run(batch []*writeRequest) {
	errs := make([]error, len(batch))
	err := c.transact(batch, errs)
	c.commits.Add(1)
	c.grouped.Add(int64(len(batch)))
	// A commit into a file that was deleted meanwhile is no commit: none of it survives a start.
	if err == nil && c.health.gone() {
		err = fmt.Errorf("store: the database file %s was deleted or replaced under the running server", c.health.path)
	}
	fault := err
	for i := range errs {
		if fault == nil && errs[i] != nil && storageFault(errs[i]) {
			fault = errs[i]
		}
	}
	c.health.note(fault)
	for i, r := range batch {
		if err != nil && errs[i] == nil {
			errs[i] = err
		}
		if errs[i] != nil && (errs[i] == err && fault != nil || storageFault(errs[i])) {
			errs[i] = fmt.Errorf("%w (%v)", errWritesFailing, errs[i])
		}
		r.done <- errs[i]
	}
}

// transact runs the batch in one transaction. It fills errs with each caller's own failure and
// returns an error that applies to every caller (begin or commit failed).
func (c *committer) transact(batch []*writeRequest, errs []error) error {
	tx, err := c.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback()
	single := len(batch) == 1
	var sp, rollback, release *sql.Stmt
	if !single {
		// Prepared once per transaction: every grouped write runs all three.
		for _, p := range []struct {
			st  **sql.Stmt
			sql string
		}{{&sp, `SAVEPOINT w`}, {&rollback, `ROLLBACK TO w`}, {&release, `RELEASE w`}} {
			if *p.st, err = tx.Prepare(p.sql); err != nil {
				return fmt.Errorf("store: prepare %s: %w", p.sql, err)
			}
			defer (*p.st).Close()
		}
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if single {
			// No one to protect: the caller's error rolls back the whole transaction below.
			if errs[i] = call(r.fn, tx); errs[i] != nil {
				return nil
			}
			continue
		}
		if _, err := sp.Exec(); err != nil {
			return fmt.Errorf("store: savepoint: %w", err)
		}
		if errs[i] = call(r.fn, tx); errs[i] != nil {
			if _, err := rollback.Exec(); err != nil {
				return fmt.Errorf("store: rollback to savepoint: %w", err)
			}
		}
		if _, err := release.Exec(); err != nil {
			return fmt.Errorf("store: release savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// call runs fn, turning a panic into an error so that one bad caller cannot stop the writer.
func call(fn WriteFunc, tx *sql.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return fn(tx)
}
