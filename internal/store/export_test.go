package store

import (
	"context"
)

// WriteAlone runs fn in a transaction of its own on the writer connection, bypassing group
// commit: the baseline BenchmarkGroupCommit compares against.
func (db *DB) WriteAlone(ctx context.Context, fn WriteFunc) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
