// Package delivery is the outbox engine both directions share: it claims due deliveries per
// tenant, hands them to a target's Sender, and records what came of them — delivered, retried
// with exponential backoff and jitter (honouring Retry-After), or dead once expired. Each tenant
// has a lane of its own, so one tenant's slow or failing receiver never delays another's.
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/store"
)

// MaxAge is how long a delivery is retried before it is dead (SPEC §5.3: 72 h).
const MaxAge = 72 * time.Hour

// Result is a Sender's verdict on one delivery.
type Result struct {
	// Err is nil when the receiver accepted the message.
	Err error
	// RetryAfter is the receiver's Retry-After, when it gave one.
	RetryAfter time.Duration
	// Dead means the receiver refused this message as it is: retrying it unchanged cannot
	// succeed, so it is dead-lettered now with Err as its reason.
	Dead bool
	// Reason, with Err, says why the failed delivery waits (e.g. "write_key_rejected").
	Reason string
	// Requests is how many HTTP requests carried the delivery in this Send (0 counts as 1).
	Requests int
	// Hold puts the delivery back without counting the attempt, with this reason (e.g.
	// "no_write_key"); HoldFor says when to look again.
	Hold    string
	HoldFor time.Duration
}

// Sender sends one tenant's claimed deliveries of one target and returns one Result per
// delivery, in order. It must return by the time ctx ends; whatever it has not sent by then is
// a failure to retry.
type Sender interface {
	Send(ctx context.Context, tenantID string, ds []*store.Delivery) []Result
}

// Options tune an Engine.
type Options struct {
	Target string // the deliveries.target this engine serves
	// Batch is how many deliveries a lane claims at once.
	Batch int
	// SendTimeout bounds one Send call.
	SendTimeout time.Duration
	// Backoff gives the delay before attempt n+1 after n failed attempts (jitter is added).
	Backoff func(attempts int) time.Duration
	// Idle is how long a lane with nothing due sleeps at most before looking again.
	Idle time.Duration
	// Observe, when set, is told what each finished claim came to (for metrics).
	Observe func(tenantID string, delivered, failed, dead int)
}

// DefaultBackoff doubles from 1 s up to 1 h.
func DefaultBackoff(attempts int) time.Duration {
	d := time.Second << min(max(attempts-1, 0), 12)
	return min(d, time.Hour)
}

// Engine runs the lanes of one target.
type Engine struct {
	db     Outbox
	sender Sender
	opt    Options
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	lanes   map[string]*lane
	running bool
}

type lane struct {
	wake  chan struct{}
	woken bool // a Notify arrived since the lane last looked for work

	// failingSince is when the lane's claims started failing (zero while they succeed): the
	// log says when a lane starts failing and when it recovers, not every failed attempt.
	failingSince time.Time
}

// Outbox is what an engine needs of a store (package store's *DB is one): which tenants have
// deliveries of its target, when a lane's next one is due, claiming and finishing them, and
// handing back the claims a stopped engine held. Claims are exclusive: a claimed delivery is
// "sending" until it is finished or handed back.
type Outbox interface {
	Now() time.Time
	PendingTenants(ctx context.Context, target string) ([]string, error)
	NextDue(ctx context.Context, target, tenantID string) (t time.Time, ok bool, err error)
	ClaimDeliveries(ctx context.Context, target, tenantID string, limit int) ([]*store.Delivery, error)
	FinishDeliveries(ctx context.Context, outs []store.Outcome) (delivered, dead int, err error)
	ReleaseSending(ctx context.Context, target string) (int64, error)
}

// NewEngine returns an engine; Start runs it.
func NewEngine(db Outbox, sender Sender, opt Options, log *slog.Logger) *Engine {
	if opt.Batch <= 0 {
		// A claim's last request waits for analytics-go's flush interval and the claim and its
		// record for the writer, once per claim: 2,500 (six or seven full requests of 1 KB
		// events) carry that wait over more events than 1,000 did (one tenant end to end,
		// three pairs: 7,803 / 7,956 / 7,878 → 9,484 / 9,785 / 10,080 events/s).
		opt.Batch = 2500
	}
	if opt.SendTimeout <= 0 {
		opt.SendTimeout = 60 * time.Second
	}
	if opt.Backoff == nil {
		opt.Backoff = DefaultBackoff
	}
	if opt.Idle <= 0 {
		opt.Idle = 30 * time.Second
	}
	return &Engine{db: db, sender: sender, opt: opt, log: log, lanes: map[string]*lane{}}
}

// Start hands back rows a previous process left claimed, then starts a lane for every tenant
// with pending deliveries.
func (e *Engine) Start(ctx context.Context) error {
	if n, err := e.db.ReleaseSending(ctx, e.opt.Target); err != nil {
		return err
	} else if n > 0 {
		e.log.Info("handed back deliveries left claimed by an earlier run", "target", e.opt.Target, "count", n)
	}
	tenants, err := e.db.PendingTenants(ctx, e.opt.Target)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.running = true
	e.mu.Unlock()
	for _, t := range tenants {
		e.Notify(t)
	}
	return nil
}

// Running reports whether the engine is started and not closed (for /readyz).
func (e *Engine) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running
}

// Ready fails when the engine is not running (for /readyz).
func (e *Engine) Ready(context.Context) error {
	if !e.Running() {
		return errors.New("delivery engine " + e.opt.Target + " is not running")
	}
	return nil
}

// Notify tells the engine that a tenant may have new due deliveries: it wakes the tenant's lane
// or starts one.
func (e *Engine) Notify(tenantID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running {
		return
	}
	if l, ok := e.lanes[tenantID]; ok {
		l.woken = true
		select {
		case l.wake <- struct{}{}:
		default:
		}
		return
	}
	l := &lane{wake: make(chan struct{}, 1)}
	e.lanes[tenantID] = l
	e.wg.Add(1)
	go e.run(tenantID, l)
}

// Close stops every lane: a Send in progress gets until ctx ends to finish, then the rows still
// claimed are handed back to pending for the next start.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if !e.running {
		e.mu.Unlock()
		return nil
	}
	e.running = false
	for _, l := range e.lanes {
		select { // a sleeping lane wakes, sees the engine stopping and ends
		case l.wake <- struct{}{}:
		default:
		}
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	e.cancel() // ends the lanes' sleeps, and any Send still running
	<-done
	_, err := e.db.ReleaseSending(context.Background(), e.opt.Target)
	return err
}

// stopping reports whether Close was called; lanes finish their current claim and stop.
func (e *Engine) stopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.running
}

func (e *Engine) run(tenantID string, l *lane) {
	defer e.wg.Done()
	for !e.stopping() {
		e.mu.Lock()
		l.woken = false
		e.mu.Unlock()
		n, err := e.drain(tenantID, l)
		if err != nil {
			if errors.Is(err, store.ErrClosed) {
				return
			}
			e.log.Error("delivery lane", "target", e.opt.Target, "tenant_id", tenantID, "error", err.Error())
			e.sleep(l, time.Second)
			continue
		}
		if n > 0 {
			continue // there may be more due right now
		}
		next, ok, err := e.db.NextDue(e.ctx, e.opt.Target, tenantID)
		if err != nil {
			e.sleep(l, time.Second)
			continue
		}
		if !ok {
			// Nothing pending at all: end the lane unless a Notify came in meanwhile.
			e.mu.Lock()
			if !l.woken {
				delete(e.lanes, tenantID)
				e.mu.Unlock()
				return
			}
			e.mu.Unlock()
			continue
		}
		e.sleep(l, min(time.Until(next), e.opt.Idle))
	}
}

func (e *Engine) sleep(l *lane, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.wake:
	case <-e.ctx.Done():
	}
}

// drain claims due deliveries of a tenant a batch at a time, sends them and records the
// outcomes, until a claim comes back empty. It keeps the lane's one Send going back to back: the
// next batch is claimed while the current one is sent, and a sent batch's outcomes are recorded
// while the next one is sent, so the claim and the record (writes that may queue behind the
// processor's) are no longer in the time between two sends. One Send at a time per lane, as
// before: a Sender that bisects a refused request still has the tenant's requests to itself.
// It returns how many deliveries it claimed and the first database error (after which it claims
// no more, but sends and records what it holds).
func (e *Engine) drain(tenantID string, l *lane) (int, error) {
	ds, err := e.db.ClaimDeliveries(e.ctx, e.opt.Target, tenantID, e.opt.Batch)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	type claim struct {
		ds  []*store.Delivery
		err error
	}
	total := 0
	var recording chan error // the previous batch's record, when one is under way
	for {
		var next chan claim
		if !e.stopping() {
			next = make(chan claim, 1)
			go func() {
				ds, err := e.db.ClaimDeliveries(e.ctx, e.opt.Target, tenantID, e.opt.Batch)
				next <- claim{ds, err}
			}()
		}
		outs := e.send(tenantID, l, ds)
		total += len(ds)
		if recording != nil {
			if rerr := <-recording; err == nil {
				err = rerr
			}
		}
		recording = make(chan error, 1)
		go func() { recording <- e.record(tenantID, outs) }()
		if next == nil {
			break
		}
		c := <-next
		if c.err != nil && err == nil {
			err = c.err
		}
		if len(c.ds) == 0 || e.stopping() {
			break // rows claimed ahead of a Close are handed back by it (ReleaseSending)
		}
		ds = c.ds
	}
	if rerr := <-recording; err == nil {
		err = rerr
	}
	return total, err
}

// send sends one claimed batch and returns the outcomes to record.
func (e *Engine) send(tenantID string, l *lane, ds []*store.Delivery) []store.Outcome {
	ctx, cancel := context.WithTimeout(e.ctx, e.opt.SendTimeout)
	results := e.sender.Send(ctx, tenantID, ds)
	cancel()
	now := e.db.Now()
	outs := make([]store.Outcome, len(ds))
	ok := 0
	var firstErr error
	for i, d := range ds {
		outs[i].ID = d.ID
		var r Result
		if i < len(results) {
			r = results[i]
		} else {
			r.Err = errors.New("sender returned no result")
		}
		outs[i].Requests = r.Requests
		switch {
		case r.Hold != "":
			outs[i].Hold, outs[i].NextAt = r.Hold, now.Add(r.HoldFor)
		case r.Err == nil:
			outs[i].Delivered = true
			ok++
		default:
			if firstErr == nil && !r.Dead {
				firstErr = r.Err
			}
			wait := jitter(e.opt.Backoff(d.Attempts))
			wait = max(wait, r.RetryAfter)
			outs[i].Err, outs[i].NextAt, outs[i].Dead, outs[i].Reason = r.Err.Error(), now.Add(wait), r.Dead, r.Reason
		}
	}
	e.noteHealth(tenantID, l, ok, firstErr)
	return outs
}

// record stores a sent batch's outcomes and reports them to Observe. It uses a context of its
// own: outcomes of a finished Send must be kept even while shutting down, or the receiver would
// get them twice.
func (e *Engine) record(tenantID string, outs []store.Outcome) error {
	delivered, dead, err := e.db.FinishDeliveries(context.Background(), outs)
	if err != nil {
		return err
	}
	if e.opt.Observe != nil {
		failed := 0
		for _, o := range outs {
			if !o.Delivered && o.Hold == "" {
				failed++
			}
		}
		e.opt.Observe(tenantID, delivered, failed-dead, dead)
	}
	return nil
}

// noteHealth logs a lane that starts failing (a claim with retryable failures and nothing
// delivered) and one that recovers (a claim delivered something after failing), once each.
func (e *Engine) noteHealth(tenantID string, l *lane, delivered int, failure error) {
	switch {
	case failure != nil && delivered == 0 && l.failingSince.IsZero():
		l.failingSince = time.Now()
		e.log.Warn("delivery lane failing; retrying with backoff", "target", e.opt.Target, "tenant_id", tenantID, "error", failure.Error())
	case delivered > 0 && !l.failingSince.IsZero():
		e.log.Warn("delivery lane recovered", "target", e.opt.Target, "tenant_id", tenantID,
			"failing_for", time.Since(l.failingSince).Round(time.Second).String())
		l.failingSince = time.Time{}
	}
}

// jitter spreads d by ±20% so that many failed deliveries do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
