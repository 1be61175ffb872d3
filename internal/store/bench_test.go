package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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
	src := mustSource(b, db, "t", "src_benchbenchbench")
	body, payload := make([]byte, 1000), make([]byte, 1100)
	b.ResetTimer()
	for i := range b.N {
		ib := &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, Body: []byte("[]")}
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

// BenchmarkCommitProcessedRandomKeys is BenchmarkCommitProcessed with keys as real traffic has
// them, on a store that already holds 200,000 events: recipients drawn from 100,000, random event
// and message ids, 20 campaigns and templates, one transmission per batch, four types. Each such
// key lands on its own page of its index, and every page a transaction dirties is written whole
// to the WAL (and again by the checkpoint): wbytes/event, the bytes the process wrote per event,
// shows that amplification (about 16 times the event's own 2 KB with today's indexes).
func BenchmarkCommitProcessedRandomKeys(b *testing.B) {
	db := MustOpenDB(b)
	ctx := context.Background()
	src := mustSource(b, db, "t", "src_benchbenchbench")
	body, payload := make([]byte, 1000), make([]byte, 1100)
	r := rand.New(rand.NewPCG(1, 2))
	types := []string{"delivery", "open", "click", "injection"}
	ts := time.Now().Add(-48 * time.Hour)
	seq := 0
	batch := func() {
		seq++
		ib := &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, Body: []byte("[]")}
		if _, err := db.AddBatch(ctx, ib); err != nil {
			b.Fatal(err)
		}
		pb := &store.ProcessedBatch{Batch: ib, Target: "segment", MaxAge: time.Hour}
		for j := range 1000 {
			ts = ts.Add(time.Millisecond)
			pb.Events = append(pb.Events, &store.EmailEvent{EventID: strconv.FormatUint(r.Uint64(), 10), Type: types[r.IntN(len(types))],
				Wrapper: "message_event", Time: ts, Recipient: fmt.Sprintf("u%d@example.com", r.IntN(100_000)), MessageID: fmt.Sprintf("%020x", r.Uint64()),
				CampaignID: fmt.Sprintf("c%d", r.IntN(20)), TemplateID: fmt.Sprintf("t%d", r.IntN(20)), TransmissionID: fmt.Sprintf("tr%d", seq),
				Body: body, Status: store.EventQueued, SegmentMessageID: fmt.Sprintf("sp-%d-%d", seq, j), Payload: payload})
		}
		if err := db.CommitProcessed(ctx, pb); err != nil {
			b.Fatal(err)
		}
	}
	for range 200 {
		batch()
	}
	w0, counted := writtenBytes()
	b.ResetTimer()
	for range b.N {
		batch()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	if w1, _ := writtenBytes(); counted {
		b.ReportMetric(float64(w1-w0)/float64(b.N*1000), "wbytes/event")
	}
}

// writtenBytes is what the process has written so far (Linux's /proc/self/io wchar); ok is false
// where that is not available.
func writtenBytes() (n int64, ok bool) {
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, found := strings.CutPrefix(line, "wchar: "); found {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
