package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkCommitProcessed commits what the processor makes of one 1,000-event SparkPost batch:
// 1,000 events with 1 KB bodies and 1,000 Segment deliveries, in CommitProcessed's chunks.
func BenchmarkCommitProcessed(b *testing.B) {
	db := MustOpenDB(b)
	ctx := context.Background()
	tn, _ := db.CreateTenant(ctx, "t")
	src := &store.Source{ID: "src_benchbenchbench", TenantID: tn.ID, Name: "x", Auth: "basic"}
	if err := db.CreateSource(ctx, src, "u", "h"); err != nil {
		b.Fatal(err)
	}
	body, payload := make([]byte, 1000), make([]byte, 1100)
	b.ResetTimer()
	for i := range b.N {
		ib := &store.InboxBatch{TenantID: tn.ID, SourceID: src.ID, Body: []byte("[]")}
		if _, err := db.AddBatch(ctx, ib); err != nil {
			b.Fatal(err)
		}
		pb := &store.ProcessedBatch{Batch: ib, Target: "segment", MaxAge: time.Hour}
		for j := range 1000 {
			pb.Events = append(pb.Events, &store.EmailEvent{EventID: fmt.Sprintf("%d-%d", i, j), Type: "delivery",
				Wrapper: "message_event", Time: time.Now(), Recipient: fmt.Sprintf("u%d@example.com", j), MessageID: "m",
				CampaignID: "c", Body: body, Status: store.EventQueued, SegmentMessageID: fmt.Sprintf("sp-%d-%d", i, j), Payload: payload})
		}
		if err := db.CommitProcessed(ctx, pb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
