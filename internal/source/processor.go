package source

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// Processor is the worker between the inbox and the outbox: it splits each committed SparkPost
// batch into events, maps them to Segment track calls and commits events and deliveries with
// store.CommitProcessed: in short background transactions that every tenant's webhook acks go
// ahead of, the batch's "processed" mark with the last one. A crash anywhere means the batch is
// simply done again; what was committed before it is recognised by event_id, never stored or
// queued twice.
type Processor struct {
	db  *store.DB
	log *slog.Logger
	// Notify is told which tenant got new deliveries (the Segment engine wakes its lane).
	Notify func(tenantID string)
	// Observe is told how many events a batch held and how many were new (for metrics).
	Observe func(tenantID string, received, stored, queued int)
	// Poll is how often the inbox is looked at without a Wake.
	Poll time.Duration

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	alive  bool
	mu     sync.Mutex
}

// NewProcessor returns a processor; Start runs it.
func NewProcessor(db *store.DB, log *slog.Logger) *Processor {
	return &Processor{db: db, log: log, Poll: time.Second, wake: make(chan struct{}, 1)}
}

// Wake tells the processor a batch was committed.
func (p *Processor) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start runs the loop until Close.
func (p *Processor) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.cancel, p.done, p.alive = cancel, make(chan struct{}), true
	p.mu.Unlock()
	go p.loop(ctx)
	return nil
}

// Close stops the loop after the batches in hand are committed (or ctx ends).
func (p *Processor) Close(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready fails when the loop is not running.
func (p *Processor) Ready(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.alive {
		return errors.New("sparkpost processor is not running")
	}
	return nil
}

func (p *Processor) loop(ctx context.Context) {
	defer func() {
		p.mu.Lock()
		p.alive = false
		p.mu.Unlock()
		close(p.done)
	}()
	t := time.NewTicker(p.Poll)
	defer t.Stop()
	for ctx.Err() == nil {
		n, err := p.ProcessOnce(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Error("sparkpost processor", "error", err.Error())
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-p.wake:
		case <-t.C:
		}
	}
}

// ProcessOnce processes the oldest unprocessed batches, a few at a time in parallel (mapping is
// CPU work; the commits share the group committer), and returns how many it finished.
func (p *Processor) ProcessOnce(ctx context.Context) (int, error) {
	workers := max(runtime.GOMAXPROCS(0), 2)
	batches, err := p.db.UnprocessedBatches(ctx, 2*workers)
	if err != nil || len(batches) == 0 {
		return 0, err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		done  int
		next  = make(chan *store.InboxBatch)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				err := p.process(ctx, b)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				} else if err == nil {
					done++
				}
				mu.Unlock()
			}
		}()
	}
	for _, b := range batches {
		next <- b
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
	_, keyErr := p.db.SegmentKey(ctx, b.TenantID)
	pb := &store.ProcessedBatch{
		Batch: b, Paused: src.Paused, NoKey: domain.ErrorCode(keyErr) == domain.ENOTFOUND,
		Target: delivery.TargetSegment, MaxAge: delivery.MaxAge,
	}
	settings := Settings{
		UserIDKeys: src.Settings.UserIDKeys, AnonymousID: src.Settings.AnonymousID,
		Events: src.Settings.Events, ForwardInitialOpens: src.Settings.ForwardInitialOpens,
	}
	elems, _, err := SplitBatch(b.Body)
	if err != nil {
		pb.Error = domain.ErrorMessage(err)
	}
	pb.Events = make([]*store.EmailEvent, 0, len(elems))
	for _, elem := range elems {
		pb.Events = append(pb.Events, p.event(b.TenantID, ParseEvent(elem), settings))
	}
	if err := p.db.CommitProcessed(ctx, pb); err != nil {
		return err
	}
	// One line per batch, so that "SparkPost says it sent 19 events" can be checked against what
	// became of them; the ids and counts only, never a body (it holds the recipients' data).
	p.log.Info("sparkpost batch processed",
		"tenant_id", b.TenantID, "source_id", b.SourceID, "batch_id", b.BatchID, "inbox_id", b.ID,
		"events", len(elems), "new", pb.Inserted, "duplicates", pb.Duplicates, "queued", pb.Queued,
		"transactions", pb.Chunks, "ms", float64(time.Since(start).Microseconds())/1000)
	if p.Observe != nil {
		p.Observe(b.TenantID, len(elems), pb.Inserted, pb.Queued)
	}
	if pb.Queued > 0 && p.Notify != nil {
		p.Notify(b.TenantID)
	}
	return nil
}

// event maps one parsed event to its stored row and, when it is to be sent, its Segment payload.
func (p *Processor) event(tenantID string, ev Event, s Settings) *store.EmailEvent {
	e := &store.EmailEvent{
		EventID: ev.EventID, Type: ev.Type, Wrapper: ev.Wrapper, Time: ev.Timestamp, Recipient: ev.Recipient,
		MessageID: ev.MessageID, CampaignID: ev.CampaignID, TemplateID: ev.TemplateID, TransmissionID: ev.TransmissionID,
		SubaccountID: ev.SubaccountID, BounceClass: ev.BounceClass, Body: ev.Body,
	}
	t, out, reason := Map(tenantID, ev, s)
	switch out {
	case OutcomeSend:
		payload, err := json.Marshal(delivery.SegmentMessage{
			Type: "track", MessageID: t.MessageID, UserID: t.UserID, AnonymousID: t.AnonymousID, Event: t.Event,
			Timestamp: t.Timestamp, Properties: t.Properties, Context: t.Context,
		})
		if err != nil {
			e.Status, e.Reason = store.EventInvalid, "cannot encode the Segment message: "+err.Error()
			break
		}
		e.Status, e.SegmentMessageID, e.Payload = store.EventQueued, t.MessageID, payload
	case OutcomeSkipped:
		e.Status, e.Reason = store.EventSkipped, reason
	case OutcomeInvalid:
		e.Status, e.Reason = store.EventInvalid, ev.ParseError
	default:
		e.Status, e.Reason = store.EventNotSent, reason
	}
	return e
}
