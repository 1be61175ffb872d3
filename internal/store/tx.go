package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Tx is one caller's part of a write, as the packages outside the store see it: the store's
// methods on it, never SQL, so that another store can stand behind the same calls. It carries
// the writer's prepared statements: parsing a statement costs about as much as running it on
// direction B's hot path, so a hook with 10,000 messages, or 500 single-message hooks grouped
// into one commit, reuse statements the writer connection prepared once.
type Tx struct {
	sql   *sql.Tx
	base  map[string]*sql.Stmt // the writer's prepared statements
	stmts map[string]*sql.Stmt // their transaction-bound forms, made on first use
}

// Update runs fn as one foreground write (group commit, see Write): fn's calls commit together
// or not at all, and Update returns once they are committed.
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return db.Write(ctx, func(tx *sql.Tx) error { return fn(db.txOf(tx)) })
}

// txOf wraps a transaction of db.Write with the statements Open prepared.
func (db *DB) txOf(tx *sql.Tx) *Tx {
	return &Tx{sql: tx, base: db.dest.m, stmts: map[string]*sql.Stmt{}}
}

// destStatements are direction B's hot statements, prepared once by Open.
type destStatements struct {
	m map[string]*sql.Stmt // on the writer
	// hook is DestinationForHook's query on the reader pool.
	hook *sql.Stmt
}

// destHotQueries are the statements every hook call runs.
var destHotQueries = []string{
	qDestinationForWrite, qInsertInbound, qInsertDuplicate, qSetInboundOutcome,
	qProfile, qProfileBodies, qProfileExists, qPutProfile, qDeleteChannels, qInsertChannel,
	qPutUserEvent, qWorkflowsForEvent, insertDeliverySQL, insertPayloadSQL, qReleaseWaiting,
}

// prepareDestStatements prepares the hook's statements; Open calls it while the writer is free.
func prepareDestStatements(ctx context.Context, writer, reader *sql.DB) (*destStatements, error) {
	c := &destStatements{m: map[string]*sql.Stmt{}}
	for _, q := range destHotQueries {
		s, err := writer.PrepareContext(ctx, q)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("store: prepare: %w", err)
		}
		c.m[q] = s
	}
	var err error
	if c.hook, err = reader.PrepareContext(ctx, qDestinationForHook); err != nil {
		c.close()
		return nil, fmt.Errorf("store: prepare: %w", err)
	}
	return c, nil
}

func (c *destStatements) close() {
	for _, s := range c.m {
		s.Close()
	}
	if c.hook != nil {
		c.hook.Close()
	}
}

// stmt returns the transaction-bound form of a prepared statement, or nil when q is not prepared.
func (t *Tx) stmt(q string) *sql.Stmt {
	if s, ok := t.stmts[q]; ok {
		return s
	}
	base, ok := t.base[q]
	if !ok {
		return nil
	}
	s := t.sql.Stmt(base)
	t.stmts[q] = s
	return s
}

func (t *Tx) exec(q string, args ...any) (sql.Result, error) {
	if s := t.stmt(q); s != nil {
		return s.Exec(args...)
	}
	return t.sql.Exec(q, args...)
}

func (t *Tx) queryRow(q string, args ...any) *sql.Row {
	if s := t.stmt(q); s != nil {
		return s.QueryRow(args...)
	}
	return t.sql.QueryRow(q, args...)
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(q); s != nil {
		return s.Query(args...)
	}
	return t.sql.Query(q, args...)
}
