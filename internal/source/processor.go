package source

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
	"github.com/switchboard-hub/switchboard/internal/worker"
)

// Processor is the worker between the inbox and the outbox: it splits each committed webhook
// batch into events with its source's Provider, maps them to Segment track calls and commits
// events and deliveries with store.CommitProcessed: in short background transactions that
// every tenant's webhook acks go ahead of, the batch's "processed" mark with the last one. A crash anywhere means the batch is
// simply done again; what was committed before it is recognised by event_id, never stored or
// queued twice.
type Processor struct {
	db  Inbox
	log *slog.Logger
	// Notify is told which tenant got new deliveries (the Segment engine wakes its lane).
	Notify func(tenantID string)
	// Observe is told how many events a batch held and how many were new (for metrics).
	Observe func(tenantID string, received, stored, queued int)
	// Poll is how often the inbox is looked at without a Wake; set it before Start.
	Poll time.Duration

	loop worker.Loop
}

// Inbox is what the processor needs of a store (package store's *DB is one): the committed
// batches not yet processed, a source's settings, whether its tenant has a Segment write key,
// and the write that stores a batch's events, their deliveries and its processed mark.
type Inbox interface {
	UnprocessedBatches(ctx context.Context, afterID int64, limit int) ([]*store.InboxBatch, error)
	Source(ctx context.Context, tenantID, id string) (*store.Source, error)
	SegmentKey(ctx context.Context, tenantID string) (*store.SegmentKey, error)
	CommitProcessed(ctx context.Context, p *store.ProcessedBatch) error
}

// NewProcessor returns a processor; Start runs it.
func NewProcessor(db Inbox, log *slog.Logger) *Processor {
	p := &Processor{db: db, log: log, Poll: time.Second}
	p.loop.Name = "batch processor" // named before Start, so that /readyz says which worker is not running
	return p
}

// Wake tells the processor a batch was committed.
func (p *Processor) Wake() { p.loop.Wake() }

// Start runs the processor in the background until Close. A failing round (the database
// unavailable, say) is retried with backoff and logged at most once a minute.
func (p *Processor) Start(ctx context.Context) error {
	p.loop.Log, p.loop.Poll = p.log, p.Poll
	p.loop.Step = func(ctx context.Context) (bool, error) {
		n, err := p.ProcessOnce(ctx)
		return n > 0, err
	}
	return p.loop.Start(ctx)
}

// Close stops the processor: the round in hand is cancelled and waited for. A batch cut off
// half-way is simply processed again after a restart; what it committed is recognised by
// event_id and never stored or queued twice.
func (p *Processor) Close(ctx context.Context) error { return p.loop.Close(ctx) }

// Ready fails when the processor is not running.
func (p *Processor) Ready(ctx context.Context) error { return p.loop.Ready(ctx) }

// ProcessOnce processes the unprocessed batches, oldest first, until none is left (batches
// committed meanwhile included), a few at a time in parallel: mapping is CPU work, and while one
// batch's chunks hold the group committer the next ones are being mapped, so the writer never
// waits for a round to finish. It returns how many batches it finished and the first error;
// after an error no further batch is started (the ones under way finish).
func (p *Processor) ProcessOnce(ctx context.Context) (int, error) {
	workers := max(runtime.GOMAXPROCS(0), 2)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		first    error
		done     int
		inflight atomic.Int64 // batches handed to the workers and not finished
		failed   = make(chan struct{})
		finished = make(chan struct{}, 1)                // a batch finished: the inbox may hold new ones
		next     = make(chan *store.InboxBatch, workers) // one read ahead per worker
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			close(failed)
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := p.process(ctx, b); err != nil {
					fail(err)
				} else {
					mu.Lock()
					done++
					mu.Unlock()
				}
				inflight.Add(-1)
				select {
				case finished <- struct{}{}:
				default:
				}
			}
		}()
	}
	var after int64
feed:
	for {
		batches, err := p.db.UnprocessedBatches(ctx, after, 2*workers)
		if err != nil {
			fail(err)
			break
		}
		if len(batches) == 0 {
			if inflight.Load() == 0 {
				break // nothing waits and nothing is under way that could be followed by more
			}
			// Batches committed while these are processed are taken in this call too.
			select {
			case <-finished:
				continue
			case <-failed:
				break feed
			case <-ctx.Done():
				fail(ctx.Err())
				break feed
			}
		}
		for _, b := range batches {
			inflight.Add(1)
			select {
			case next <- b:
				after = b.ID
			case <-failed:
				inflight.Add(-1)
				break feed
			case <-ctx.Done():
				inflight.Add(-1)
				fail(ctx.Err())
				break feed
			}
		}
	}
	close(next)
	wg.Wait()
	return done, first
}

func (p *Processor) process(ctx context.Context, b *store.InboxBatch) error {
	start := time.Now()
	src, err := p.db.Source(ctx, b.TenantID, b.SourceID)
	if err != nil {
		return err
	}
	prov := Lookup(src.Provider)
	if prov == nil {
		return fmt.Errorf("source %s has provider %q, which this build does not know", src.ID, src.Provider)
	}
	_, keyErr := p.db.SegmentKey(ctx, b.TenantID)
	pb := Batch(prov, b, src.Settings, "")
	pb.Paused, pb.NoKey = src.Paused, domain.ErrorCode(keyErr) == domain.ENOTFOUND
	if err := p.db.CommitProcessed(ctx, pb); err != nil {
		return err
	}
	// One line per batch, so that "SparkPost says it sent 19 events" can be checked against what
	// became of them; the ids and counts only, never a body (it holds the recipients' data).
	p.log.Info(prov.Name()+" batch processed",
		"tenant_id", b.TenantID, "source_id", b.SourceID, "batch_id", b.BatchID, "inbox_id", b.ID,
		"events", len(pb.Events), "new", pb.Inserted, "duplicates", pb.Duplicates, "queued", pb.Queued,
		"transactions", pb.Chunks, "ms", float64(time.Since(start).Microseconds())/1000)
	if p.Observe != nil {
		p.Observe(b.TenantID, len(pb.Events), pb.Inserted, pb.Queued)
	}
	if pb.Queued > 0 && p.Notify != nil {
		p.Notify(b.TenantID)
	}
	return nil
}

// Batch turns a stored webhook body into its event rows: each element parsed by the provider
// and, unless notSent gives the reason they are only stored (a back-fill that does not
// forward), mapped to its Segment track call, which then becomes the row's delivery. The
// processor and the back-fill share it, so an event means the same wherever it came from.
func Batch(p Provider, b *store.InboxBatch, s domain.SourceSettings, notSent string) *store.ProcessedBatch {
	pb := &store.ProcessedBatch{Batch: b, Target: domain.TargetSegment, MaxAge: delivery.MaxAge}
	var elems []json.RawMessage
	if s, ok := p.(StoredSplitter); ok {
		elems = s.SplitStored(b.Body)
	} else {
		var err error
		if elems, _, err = p.Split(b.Body); err != nil {
			pb.Error = domain.ErrorMessage(err)
		}
	}
	pb.Events = make([]*store.EmailEvent, 0, len(elems))
	for _, elem := range elems {
		pb.Events = append(pb.Events, row(p, b.TenantID, p.Parse(elem), s, notSent))
	}
	return pb
}

// row maps one parsed event to its stored row and, when it is to be sent, its Segment payload.
func row(p Provider, tenantID string, ev Event, s domain.SourceSettings, notSent string) *store.EmailEvent {
	e := &store.EmailEvent{
		EventID: ev.EventID, Type: ev.Type, Wrapper: ev.Wrapper, Time: ev.Timestamp, Recipient: ev.Recipient,
		MessageID: ev.MessageID, CampaignID: ev.CampaignID, TemplateID: ev.TemplateID, TransmissionID: ev.TransmissionID,
		SubaccountID: ev.SubaccountID, BounceClass: ev.BounceClass, Body: ev.Body,
	}
	if ev.ParseError != "" {
		e.Status, e.Reason = store.EventInvalid, ev.ParseError
		return e
	}
	if notSent != "" {
		e.Status, e.Reason = store.EventNotSent, notSent
		return e
	}
	t, out, reason := p.Map(tenantID, ev, s)
	switch out {
	case OutcomeSend:
		payload, err := t.Payload()
		if err != nil {
			e.Status, e.Reason = store.EventInvalid, "cannot encode the Segment message: "+err.Error()
			break
		}
		e.Status, e.SegmentMessageID, e.Payload = store.EventQueued, t.MessageID, payload
	case OutcomeSkipped:
		e.Status, e.Reason = store.EventSkipped, reason
	case OutcomeInvalid:
		e.Status, e.Reason = store.EventInvalid, reason
	default:
		e.Status, e.Reason = store.EventNotSent, reason
	}
	return e
}
