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

// bulkYield is how much foreground writer time a background write lets pass, per unit of time
// the previous background write took, while foreground writes keep queueing: the foreground
// gets at least bulkYield/(bulkYield+1) of the writer when both lanes are full (acks first), and
// background work (the processor's chunks, retention) still gets the rest, never starved.
const bulkYield = 3

// WriteFunc is one caller's part of a shared transaction. It must do only database work: it runs
// on the writer goroutine while every other writer waits.
type WriteFunc func(tx *sql.Tx) error

type writeRequest struct {
	ctx  context.Context
	fn   WriteFunc
	done chan error
}

// committer is the group-commit loop: it owns the one writer connection, takes the writes that
// queued up while the previous transaction committed, runs them in one transaction (each under
// its own savepoint, so one caller's failure does not undo the others) and answers each caller
// only after COMMIT returned.
//
// Writes come in two lanes. The foreground lane (Write: webhook acks, admin changes, claims) is
// grouped and served first. The background lane (WriteBulk: the processor's chunks, retention,
// large outcome records) runs one write per transaction, and only when no foreground write
// waits, or once the foreground writes have had bulkYield times the previous background
// transaction's writer time (and at least one turn) since it was taken. A foreground write
// therefore waits behind at most one background transaction, which its producers keep short,
// and background work moves on however busy the foreground is.
type committer struct {
	db         *sql.DB
	fore, back lane
	quit       chan struct{}
	stopped    chan struct{}
	once       sync.Once
	alive      atomic.Bool

	// Commits and Grouped count transactions and the writes they carried, for metrics and tests.
	commits atomic.Int64
	grouped atomic.Int64

	wal        string    // the WAL file, whose size truncateWAL watches
	walChecked time.Time // when truncateWAL last looked

	health *health
}

// lane is one queue of writes into the committer, with what it counted.
type lane struct {
	reqs chan *writeRequest // unbuffered: a request is either taken by the loop or refused

	waiting                    atomic.Int64 // writes handed in and not yet taken
	txs, writes, busy, longest atomic.Int64
}

func newCommitter(db *sql.DB, path string) *committer {
	c := &committer{db: db, wal: path + "-wal", health: newHealth(path), quit: make(chan struct{}), stopped: make(chan struct{})}
	c.fore.reqs, c.back.reqs = make(chan *writeRequest), make(chan *writeRequest)
	c.alive.Store(true)
	go c.loop()
	return c
}

// Write runs fn inside a transaction shared with other concurrent writers and returns after that
// transaction committed (nil) or failed (the error). fn's own error rolls back only fn's part.
// It is the foreground lane: it goes before any waiting WriteBulk.
func (db *DB) Write(ctx context.Context, fn WriteFunc) error {
	return db.commit.write(ctx, fn, &db.commit.fore)
}

// WriteBulk is Write for background work and large writes (hundreds of rows): it runs in a
// transaction of its own, after the foreground writes (see committer). Inside a shared
// transaction each caller runs under a savepoint, and SQLite's statement journal then grows with
// every row of the savepoint, making a large write quadratic; alone it needs none. A foreground
// write may wait for one WriteBulk to finish: keep each one short (tens of milliseconds),
// splitting large work into several calls.
func (db *DB) WriteBulk(ctx context.Context, fn WriteFunc) error {
	return db.commit.write(ctx, fn, &db.commit.back)
}

func (c *committer) write(ctx context.Context, fn WriteFunc, l *lane) error {
	r := &writeRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	l.waiting.Add(1)
	select {
	case l.reqs <- r: // the loop counts it as taken
	case <-ctx.Done():
		l.waiting.Add(-1)
		return ctx.Err()
	case <-c.quit:
		l.waiting.Add(-1)
		return ErrClosed
	}
	// Once taken, wait for the outcome even if ctx ends: the caller must not be told "failed"
	// about a write that then commits.
	return <-r.done
}

// take receives a request of l without waiting, or returns nil.
func (l *lane) take() *writeRequest {
	select {
	case r := <-l.reqs:
		l.waiting.Add(-1)
		return r
	default:
		return nil
	}
}

// foregroundWaiting reports whether a foreground write is waiting for the writer: a long
// background write checks it to end early.
func (c *committer) foregroundWaiting() bool { return c.fore.waiting.Load() > 0 }

// ran records one transaction of the lane, before its callers are answered; only the
// committer's goroutine calls it.
func (l *lane) ran(writes int, d time.Duration) {
	l.txs.Add(1)
	l.writes.Add(int64(writes))
	l.busy.Add(int64(d))
	if int64(d) > l.longest.Load() {
		l.longest.Store(int64(d))
	}
}

// CommitStats reports how many transactions the committer ran and how many writes they carried.
func (db *DB) CommitStats() (commits, writes int64) {
	return db.commit.commits.Load(), db.commit.grouped.Load()
}

// LaneStats describes one lane of the committer since the database opened.
type LaneStats struct {
	Waiting      int64 // writes handed in and not yet taken by the committer
	Transactions int64
	Writes       int64
	Busy         time.Duration // writer time the transactions took, commits included
	Longest      time.Duration // the longest transaction: how long a write of the other lane may wait for one
}

func (l *lane) stats() LaneStats {
	return LaneStats{Waiting: l.waiting.Load(), Transactions: l.txs.Load(), Writes: l.writes.Load(),
		Busy: time.Duration(l.busy.Load()), Longest: time.Duration(l.longest.Load())}
}

// WriterStats reports on the foreground (Write) and background (WriteBulk) lanes, for metrics
// and tests.
func (db *DB) WriterStats() (foreground, background LaneStats) {
	return db.commit.fore.stats(), db.commit.back.stats()
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
	var (
		bulk   *writeRequest // a background write taken and waiting for its turn
		yields bool          // bulk has let at least one foreground transaction go first
		// owed is the foreground writer time still to pass before a waiting background write
		// goes ahead of waiting foreground writes: bulkYield times the last background write's.
		owed time.Duration
	)
	for {
		var first *writeRequest
		switch {
		case bulk == nil:
			select {
			case first = <-c.fore.reqs:
				c.fore.waiting.Add(-1)
			case bulk = <-c.back.reqs:
				c.back.waiting.Add(-1)
				yields = false
				continue // look at the foreground lane once more before running it
			case <-c.quit:
				return
			}
		case owed > 0 || !yields:
			first = c.fore.take()
		}
		if first == nil {
			// No foreground write waits, or the background write has waited its share.
			batch = append(batch[:0], bulk)
			bulk = nil
			owed = bulkYield * c.run(batch, &c.back)
		} else {
			batch = append(batch[:0], first)
			for len(batch) < maxGroup {
				r := c.fore.take()
				if r == nil {
					break
				}
				batch = append(batch, r)
			}
			owed -= c.run(batch, &c.fore)
			yields = true
		}
		c.truncateWAL()
	}
}

// run runs batch, a transaction of lane l, answers its callers and returns how long it took.
func (c *committer) run(batch []*writeRequest, l *lane) time.Duration {
	start := time.Now()
	errs := make([]error, len(batch))
	err := c.transact(batch, errs)
	d := time.Since(start)
	c.commits.Add(1)
	c.grouped.Add(int64(len(batch)))
	l.ran(len(batch), d)
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
	return d
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
