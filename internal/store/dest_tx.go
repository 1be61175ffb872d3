package store

import (
	"context"
	"database/sql"
	"runtime"
	"sync"
	"weak"
)

// DestTx is one write of direction B: the caller's transaction plus the writer's prepared
// statements. Parsing a statement costs about as much as running it on this hot path, so a
// hook with 10,000 messages, or 500 single-message hooks grouped into one commit, reuse
// statements the writer connection prepared once instead of parsing each one per message.
type DestTx struct {
	Tx    *sql.Tx
	base  map[string]*sql.Stmt // the writer's prepared statements; nil: not prepared (plain Exec)
	stmts map[string]*sql.Stmt // their transaction-bound forms, made on first use
}

// DestTx wraps a transaction of db.Write. Call PrepareDestinationStatements before db.Write
// (never inside it) to let it reuse prepared statements.
func (db *DB) DestTx(tx *sql.Tx) *DestTx {
	t := &DestTx{Tx: tx, stmts: map[string]*sql.Stmt{}}
	if c, ok := destStmts.Load(weak.Make(db)); ok {
		c := c.(*destStmtCache)
		c.mu.Lock()
		t.base = c.m
		c.mu.Unlock()
	}
	return t
}

// destStmts holds each open database's prepared direction-B statements, keyed weakly so that a
// closed and forgotten DB (tests open hundreds) takes its entry with it.
var destStmts sync.Map // weak.Pointer[DB] → *destStmtCache

type destStmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt // on the writer
	// hook is DestinationForHook's query on the reader pool (prepared per connection on first use).
	hook *sql.Stmt
}

// destHotQueries are the statements every hook call runs.
var destHotQueries = []string{
	qDestinationForWrite, qInsertInbound, qInsertDuplicate, qSetInboundOutcome,
	qProfile, qProfileExists, qPutProfile, qDeleteChannels, qInsertChannel,
	qPutUserEvent, qWorkflowsForEvent, insertDeliverySQL, qReleaseWaiting,
}

// PrepareDestinationStatements prepares the hook's statements on the writer connection, once
// per database. It waits for the writer to be free, so it must not run inside db.Write.
func (db *DB) PrepareDestinationStatements(ctx context.Context) error {
	key := weak.Make(db)
	if _, ok := destStmts.Load(key); ok {
		return nil
	}
	c := &destStmtCache{m: map[string]*sql.Stmt{}}
	closeAll := func() {
		for _, s := range c.m {
			s.Close()
		}
		if c.hook != nil {
			c.hook.Close()
		}
	}
	for _, q := range destHotQueries {
		s, err := db.writer.PrepareContext(ctx, q)
		if err != nil {
			closeAll()
			return err
		}
		c.m[q] = s
	}
	var err error
	if c.hook, err = db.reader.PrepareContext(ctx, qDestinationForHook); err != nil {
		closeAll()
		return err
	}
	if _, loaded := destStmts.LoadOrStore(key, c); loaded {
		closeAll()
		return nil
	}
	runtime.AddCleanup(db, func(k weak.Pointer[DB]) { destStmts.Delete(k) }, key)
	return nil
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

// hookStmt returns the prepared DestinationForHook query, or nil before PrepareDestinationStatements.
func (db *DB) hookStmt() *sql.Stmt {
	if c, ok := destStmts.Load(weak.Make(db)); ok {
		return c.(*destStmtCache).hook
	}
	return nil
}
