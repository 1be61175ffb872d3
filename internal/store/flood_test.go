package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// floodBatch is what the processor makes of one SparkPost batch of n events: 1 KB bodies, each
// event queued for Segment with a 1.1 KB payload.
func floodBatch(tenantID, sourceID string, batch, n int) (*store.InboxBatch, []*store.EmailEvent) {
	body, payload := make([]byte, 1000), make([]byte, 1100)
	raw := make([]byte, 0, n*(len(body)+20))
	events := make([]*store.EmailEvent, n)
	for j := range events {
		raw = append(raw, body...)
		events[j] = &store.EmailEvent{EventID: fmt.Sprintf("f%d-%d", batch, j), Type: "delivery", Wrapper: "message_event",
			Time: time.Now(), Recipient: fmt.Sprintf("u%d@example.com", j), MessageID: fmt.Sprintf("m%d", j), CampaignID: "c",
			Body: body, Status: store.EventQueued, SegmentMessageID: fmt.Sprintf("sp-f%d-%d", batch, j), Payload: payload}
	}
	return &store.InboxBatch{TenantID: tenantID, SourceID: sourceID, BatchID: fmt.Sprintf("flood-%d", batch), Body: raw}, events
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// TestAcksDoNotWaitBehindProcessing floods the store the way one tenant's huge batches do: its
// 10,000-event batches are committed to the inbox and processed back to back, while another
// tenant's webhook acks (one-event AddBatch commits) arrive at a steady 100 a second (a smaller
// flood under the race detector), each timed from its arrival (open loop: an ack that waits
// does not delay the next one's start). Processing commits in short chunks on the committer's
// background lane, so an ack waits for the end of one chunk, never for a whole batch. With one
// transaction per batch (before 2026-12), every ack that arrived during it waited for all of
// it: on a 2-core machine p50 300 ms, p99 0.6–1.3 s (20 s under the race detector).
func TestAcksDoNotWaitBehindProcessing(t *testing.T) {
	if testing.Short() {
		t.Skip("floods the writer for several seconds")
	}
	db := MustOpenDB(t)
	ctx := context.Background()
	flood, quiet := mustSource(t, db, "flood", "src_floodfloodflood"), mustSource(t, db, "quiet", "src_quietquietquiet")

	// Under the race detector SQLite runs about twenty times slower (a 10,000-event batch takes
	// 20–30 s): one smaller batch and fewer acks are enough to measure there.
	batches, perBatch, every := 4, 10_000, 10*time.Millisecond
	if raceEnabled {
		batches, perBatch, every = 1, 5_000, 50*time.Millisecond
	}
	type prepared struct {
		raw    *store.InboxBatch
		events []*store.EmailEvent
	}
	work := make([]prepared, batches)
	for i := range work {
		work[i].raw, work[i].events = floodBatch(flood.TenantID, flood.ID, i, perBatch)
	}

	var (
		mu    sync.Mutex
		lats  []time.Duration
		fails []error
		acks  sync.WaitGroup
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			acks.Add(1)
			go func() {
				defer acks.Done()
				start := time.Now()
				_, err := db.AddBatch(ctx, &store.InboxBatch{TenantID: quiet.TenantID, SourceID: quiet.ID,
					BatchID: fmt.Sprintf("ack-%d", i), Body: []byte(`[{"msys":{"message_event":{"type":"delivery","event_id":"x"}}}]`)})
				d := time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fails = append(fails, err)
					return
				}
				lats = append(lats, d)
			}()
		}
	}()

	var batchTimes []time.Duration
	chunks := 0
	foreBefore, bulkBefore := db.WriterStats()
	began := time.Now()
	for _, w := range work {
		start := time.Now()
		if _, err := db.AddBatch(ctx, w.raw); err != nil {
			t.Fatal(err)
		}
		p := &store.ProcessedBatch{Batch: w.raw, Events: w.events, Target: "segment", MaxAge: time.Hour}
		if err := db.CommitProcessed(ctx, p); err != nil {
			t.Fatal(err)
		}
		if p.Inserted != perBatch || p.Queued != perBatch || p.Duplicates != 0 {
			t.Fatalf("batch %s: inserted %d, queued %d, duplicates %d; want %d, %d, 0", w.raw.BatchID, p.Inserted, p.Queued, p.Duplicates, perBatch, perBatch)
		}
		batchTimes = append(batchTimes, time.Since(start))
		chunks += p.Chunks
	}
	processing := time.Since(began)
	_, bulk := db.WriterStats()
	close(stop)
	<-stopped
	acks.Wait()

	if len(fails) > 0 {
		t.Fatalf("%d of %d acks failed, first: %v", len(fails), len(fails)+len(lats), fails[0])
	}
	var committed int
	if err := db.Reader().QueryRow(`SELECT COUNT(*) FROM inbox WHERE source_id = ?`, quiet.ID).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if committed != len(lats) {
		t.Fatalf("%d acks answered, %d batches committed; every answered ack must be committed", len(lats), committed)
	}
	slices.Sort(lats)
	slices.Sort(batchTimes)
	p50, p99, worst := percentile(lats, 0.50), percentile(lats, 0.99), lats[len(lats)-1]
	batchMedian := percentile(batchTimes, 0.5)
	fore, _ := db.WriterStats()
	bulkTxs := bulk.Transactions - bulkBefore.Transactions
	t.Logf("%d acks while %d batches of %d events were processed in %v (%.0f events/s; batch commit median %v, max %v)",
		len(lats), batches, perBatch, processing.Round(time.Millisecond), float64(batches*perBatch)/processing.Seconds(),
		batchMedian.Round(time.Millisecond), batchTimes[len(batchTimes)-1].Round(time.Millisecond))
	t.Logf("%d chunks of %d events on average, each %v on average, the longest %v",
		chunks, batches*perBatch/max(chunks, 1), ((bulk.Busy - bulkBefore.Busy) / time.Duration(max(bulkTxs, 1))).Round(100*time.Microsecond),
		bulk.Longest.Round(100*time.Microsecond))
	t.Logf("ack latency p50 %v, p99 %v, max %v; %d foreground transactions carried %d writes, the longest %v",
		p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), worst.Round(100*time.Microsecond),
		fore.Transactions-foreBefore.Transactions, fore.Writes-foreBefore.Writes, fore.Longest.Round(100*time.Microsecond))
	if len(lats) < 20 {
		t.Fatalf("only %d acks during the flood; the test measured nothing", len(lats))
	}
	// Generous, for a busy 2-core CI machine under -race: SparkPost gives up after 10 s.
	if p99 > 5*time.Second {
		t.Errorf("p99 ack %v while another tenant's batches are processed; want well under SparkPost's 10 s", p99)
	}
	// The ratio that shows acks do not wait for a whole batch, whatever the machine's speed: one
	// transaction per batch made the p99 ack at least the batch's commit time (one chunk is a
	// small part of it). Half leaves room for a machine whose other processes take the CPU
	// (a third failed once at 228 ms against 665 ms while other test binaries ran).
	if p99 > batchMedian/2 {
		t.Errorf("p99 ack %v is more than half of one batch's commit (%v): acks wait behind whole batches", p99, batchMedian)
	}
}

// mustSource creates a tenant with one SparkPost source.
func mustSource(t testing.TB, db *store.DB, name, sourceID string) *store.Source {
	t.Helper()
	ctx := context.Background()
	tn, err := db.CreateTenant(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	src := &store.Source{ID: sourceID, TenantID: tn.ID, Name: name, Auth: "basic"}
	if err := db.CreateSource(ctx, src, "u-"+name, "h"); err != nil {
		t.Fatal(err)
	}
	return src
}
