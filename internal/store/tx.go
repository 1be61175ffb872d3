package store

import (
	"context"
	"database/sql"
	"fmt"
)

// DestTx is one write of direction B: the caller's transaction plus the writer's prepared
// statements. Parsing a statement costs about as much as running it on this hot path, so a
// hook with 10,000 messages, or 500 single-message hooks grouped into one commit, reuse
// statements the writer connection prepared once instead of parsing each one per message.
type DestTx struct {
	Tx    *sql.Tx
	base  map[string]*sql.Stmt // the writer's prepared statements
	stmts map[string]*sql.Stmt // their transaction-bound forms, made on first use
}

// DestTx wraps a transaction of db.Write with the statements Open prepared for direction B.
func (db *DB) DestTx(tx *sql.Tx) *DestTx {
	return &DestTx{Tx: tx, base: db.dest.m, stmts: map[string]*sql.Stmt{}}
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
	qProfile, qProfileExists, qPutProfile, qDeleteChannels, qInsertChannel,
	qPutUserEvent, qWorkflowsForEvent, insertDeliverySQL, qReleaseWaiting,
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
func (t *DestTx) stmt(q string) *sql.Stmt {
	if s, ok := t.stmts[q]; ok {
		return s
	}
	base, ok := t.base[q]
	if !ok {
		return nil
	}
	s := t.Tx.Stmt(base)
	t.stmts[q] = s
	return s
}

func (t *DestTx) exec(q string, args ...any) (sql.Result, error) {
	if s := t.stmt(q); s != nil {
		return s.Exec(args...)
	}
	return t.Tx.Exec(q, args...)
}

func (t *DestTx) queryRow(q string, args ...any) *sql.Row {
	if s := t.stmt(q); s != nil {
		return s.QueryRow(args...)
	}
	return t.Tx.QueryRow(q, args...)
}

func (t *DestTx) query(q string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(q); s != nil {
		return s.Query(args...)
	}
	return t.Tx.Query(q, args...)
}
