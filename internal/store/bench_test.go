package store_test

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// BenchmarkGroupCommit compares 64 concurrent writers of one small row each going through the
// group committer with the same writers each running a transaction of its own on the single
// writer connection. Compare the rows/s of the two sub-benchmarks; their ratio is the gain.
func BenchmarkGroupCommit(b *testing.B) {
	const writers = 64
	run := func(b *testing.B, write func(db *store.DB, id int64) error) {
		db := MustOpenDB(b)
		createItems(b, db)
		var next atomic.Int64
		b.ResetTimer()
		var wg sync.WaitGroup
		per := (b.N + writers - 1) / writers
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					if err := write(db, next.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(per*writers)/b.Elapsed().Seconds(), "rows/s")
	}
	insert := func(tx *sql.Tx, id int64) error {
		_, err := tx.Exec(`INSERT INTO items (id) VALUES (?)`, id)
		return err
	}
	b.Run("grouped", func(b *testing.B) {
		run(b, func(db *store.DB, id int64) error {
			return db.Write(context.Background(), func(tx *sql.Tx) error { return insert(tx, id) })
		})
	})
	b.Run("tx-per-write", func(b *testing.B) {
		run(b, func(db *store.DB, id int64) error {
			return db.WriteAlone(context.Background(), func(tx *sql.Tx) error { return insert(tx, id) })
		})
	})
}
