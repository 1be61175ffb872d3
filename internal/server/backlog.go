package server

import (
	"context"
	"sync"
	"time"
)

// The inbox takes a webhook batch at the speed of one insert, and the processor turns it into
// events and deliveries several times more slowly (SPEC §7's ingest against sustained rates). So
// that a sender faster than the processor cannot grow the inbox without bound — and one tenant's
// flood cannot stand in front of every other tenant's batches for long — a tenant whose batches
// waiting to be processed already hold InboxBacklog bytes is answered 503 with Retry-After until
// the processor has caught up. SparkPost and SendGrid retry such a batch for hours, so nothing is
// lost; the sender is slowed to what the processor sustains.
const (
	// DefaultInboxBacklog is each tenant's bound on unprocessed batch bytes: about 128,000
	// SparkPost events, a big campaign's burst, 10–20 s of processing.
	DefaultInboxBacklog = 128 << 20
	// backlogFresh is how long a snapshot of every tenant's backlog answers for a tenant under
	// its bound; a tenant the snapshot shows at or over it is looked up again before a refusal.
	backlogFresh = 250 * time.Millisecond
	// backlogRetryAfter is the Retry-After, in seconds, of a batch refused for the backlog.
	backlogRetryAfter = 5
	// refusedInboxBacklog labels switchboard_hook_bodies_refused_total for these refusals.
	refusedInboxBacklog = "inbox_backlog"
)

// backlogGate answers whether a tenant's unprocessed batches are at their bound. It reads a
// tenant's backlog at most every backlogFresh while it is under the bound, counting what this
// server committed since, and reads it again before every refusal, so a refusal always reflects
// the inbox as it is.
type backlogGate struct {
	limit int64
	read  func(ctx context.Context, tenantID string) (int64, error)

	mu      sync.Mutex
	tenants map[string]*backlogEntry
}

type backlogEntry struct {
	at    time.Time
	bytes int64
}

func newBacklogGate(limit int64, read func(ctx context.Context, tenantID string) (int64, error)) *backlogGate {
	if limit == 0 {
		limit = DefaultInboxBacklog
	}
	return &backlogGate{limit: limit, read: read, tenants: map[string]*backlogEntry{}}
}

// full reports whether tenantID's waiting batches hold limit bytes or more, and how many they
// hold. A failed read lets the batch through: the commit that follows reports the database's
// state better than a refusal would.
func (g *backlogGate) full(ctx context.Context, tenantID string) (waiting int64, full bool) {
	if g.limit <= 0 {
		return 0, false
	}
	g.mu.Lock()
	e := g.tenants[tenantID]
	if e != nil && e.bytes < g.limit && time.Since(e.at) < backlogFresh {
		waiting = e.bytes
		g.mu.Unlock()
		return waiting, false
	}
	g.mu.Unlock()
	waiting, err := g.read(ctx, tenantID)
	if err != nil {
		return 0, false
	}
	g.mu.Lock()
	if len(g.tenants) > 10000 {
		clear(g.tenants) // entries are only a cache; a server with that many senders starts over
	}
	g.tenants[tenantID] = &backlogEntry{at: time.Now(), bytes: waiting}
	g.mu.Unlock()
	return waiting, waiting >= g.limit
}

// added counts a batch of n bytes just committed for tenantID into its cached backlog.
func (g *backlogGate) added(tenantID string, n int) {
	g.mu.Lock()
	if e := g.tenants[tenantID]; e != nil {
		e.bytes += int64(n)
	}
	g.mu.Unlock()
}
