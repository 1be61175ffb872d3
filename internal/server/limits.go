package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/web"
)

// Hook bodies are read whole into memory, so the body bytes held at once are bounded twice (SPEC
// §9): in all (Config.HookMemory) and per tenant (Config.HookMemoryPerTenant), so that one
// tenant's burst, or its trickled uploads, cannot take the room every other tenant's hooks need.
// A request waits briefly for room and is then told to come back (503 + Retry-After), which
// SparkPost and Segment both do, instead of exhausting memory.
//
// Room is reserved only once the hook has authenticated the caller, because only then is the
// tenant known and the body worth reading: an anonymous caller holds no memory at all. The body
// must then arrive within HookBodyTimeout plus its size at HookBodyRate, or it is cut off (408,
// connection closed) and its room given back: trickling a body cannot keep a reservation.
const (
	// DefaultHookMemory is how many body bytes hooks may hold at once, all tenants together.
	DefaultHookMemory = 256 << 20
	// DefaultHookBodyTimeout is the time any hook body may take to arrive, whatever its size.
	DefaultHookBodyTimeout = 10 * time.Second
	// DefaultHookBodyRate is the slowest a hook body may arrive beyond DefaultHookBodyTimeout,
	// in bytes per second: a full 16 MiB body gets 26 s, inside the server's 60 s ReadTimeout.
	DefaultHookBodyRate = 1 << 20

	// hookMemoryWait is how long a request waits for room before it is refused.
	hookMemoryWait = 2 * time.Second
	// minHookReservation is what even an empty body costs: headers and bookkeeping.
	minHookReservation = 4 << 10
	// ctxHookBody is where limitHookMemory leaves the request's claim on the budget.
	ctxHookBody = "sb.hook_body"
)

// Why a hook body was refused or cut off, as the label of switchboard_hook_bodies_refused_total.
const (
	refusedTenantShare  = "tenant_share"
	refusedServerBudget = "server_budget"
	refusedSlowBody     = "slow_body"
)

// hookBudget hands out room for hook bodies: from one tenant's share first, then from the
// server's total. A request waiting for the total therefore already holds its tenant's share, so
// the room one tenant takes or waits for is never more than its share.
type hookBudget struct {
	total    *semaphore.Weighted
	share    int64
	timeout  time.Duration
	rate     int64
	reserved prometheus.Gauge
	refused  *prometheus.CounterVec

	mu      sync.Mutex
	tenants map[string]*tenantBudget
}

// tenantBudget is one tenant's share while it has requests holding or waiting for room.
type tenantBudget struct {
	sem   *semaphore.Weighted
	users int // requests holding or waiting for room; the entry goes when the last one is done
}

// newHookBudget builds the budget of cfg. Both sizes are at least one full-size body, or a
// full-size body could never be read; the share is at most the total.
func newHookBudget(cfg Config, reg prometheus.Registerer) *hookBudget {
	total := cfg.HookMemory
	if total <= 0 {
		total = DefaultHookMemory
	}
	total = max(total, HookBodyLimit)
	share := cfg.HookMemoryPerTenant
	if share <= 0 {
		share = total / 4
	}
	share = min(max(share, HookBodyLimit), total)
	b := &hookBudget{
		total: semaphore.NewWeighted(total), share: share,
		timeout: cfg.HookBodyTimeout, rate: cfg.HookBodyRate,
		reserved: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_hook_body_bytes_reserved",
			Help: "Hook body bytes reserved by requests being read or handled now, all tenants together.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_hook_bodies_refused_total",
			Help: "Authenticated hook requests refused for room (tenant_share, server_budget: 503), for the tenant's unprocessed batches (inbox_backlog: 503) or cut off for a slow body (slow_body: 408).",
		}, []string{"reason"}),
		tenants: map[string]*tenantBudget{},
	}
	if b.timeout <= 0 {
		b.timeout = DefaultHookBodyTimeout
	}
	if b.rate <= 0 {
		b.rate = DefaultHookBodyRate
	}
	for _, r := range []string{refusedTenantShare, refusedServerBudget, refusedSlowBody, refusedInboxBacklog} {
		b.refused.WithLabelValues(r)
	}
	reg.MustRegister(b.reserved, b.refused)
	return b
}

// reserve takes n bytes of room for tenantID, waiting up to hookMemoryWait, and says which limit
// it ran into when there is none. release gives the room back; it may be called more than once.
func (b *hookBudget) reserve(ctx context.Context, tenantID string, n int64) (release func(), reason string) {
	ctx, cancel := context.WithTimeout(ctx, hookMemoryWait)
	defer cancel()
	t := b.enter(tenantID)
	if err := t.sem.Acquire(ctx, n); err != nil {
		b.leave(tenantID, t)
		return nil, refusedTenantShare
	}
	if err := b.total.Acquire(ctx, n); err != nil {
		t.sem.Release(n)
		b.leave(tenantID, t)
		return nil, refusedServerBudget
	}
	b.reserved.Add(float64(n))
	var once sync.Once
	return func() {
		once.Do(func() {
			b.total.Release(n)
			t.sem.Release(n)
			b.leave(tenantID, t)
			b.reserved.Sub(float64(n))
		})
	}, ""
}

// enter returns the tenant's share, creating it for the tenant's first request.
func (b *hookBudget) enter(tenantID string) *tenantBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tenants[tenantID]
	if t == nil {
		t = &tenantBudget{sem: semaphore.NewWeighted(b.share)}
		b.tenants[tenantID] = t
	}
	t.users++
	return t
}

// leave forgets the tenant's share once no request of it holds or waits for room.
func (b *hookBudget) leave(tenantID string, t *tenantBudget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.users--; t.users == 0 {
		delete(b.tenants, tenantID)
	}
}

// deadline is how long a body of n bytes may take to arrive.
func (b *hookBudget) deadline(n int64) time.Duration {
	return b.timeout + time.Duration(n)*time.Second/time.Duration(b.rate)
}

// hookBody is one hook request's claim on the budget: readHookBody fills it in, limitHookMemory
// gives it back when the handler is done, whichever way the handler ends.
type hookBody struct {
	release func()
}

// limitHookMemory is the hook routes' middleware: the room readHookBody reserves stays taken
// while the handler holds the body (until it has committed and answered) and is given back here.
// It reserves nothing itself: before the handler has authenticated the caller, the tenant is
// unknown and an anonymous caller must not take room.
func (s *Server) limitHookMemory(c *gin.Context) {
	hb := &hookBody{}
	c.Set(ctxHookBody, hb)
	defer func() {
		if hb.release != nil {
			hb.release()
		}
	}()
	c.Next()
}

// readHookBody reads an authenticated hook request's body for tenantID: it reserves room for the
// declared size (the hook limit when unknown) from the tenant's share and the server's budget,
// or answers 503 with Retry-After, then reads the body under a deadline for its size. A body
// that misses the deadline is domain.ETIMEOUT (408) and its connection is closed after the
// answer. Call it only after authenticating the caller.
func (s *Server) readHookBody(c *gin.Context, tenantID string) ([]byte, error) {
	v, _ := c.Get(ctxHookBody)
	hb, _ := v.(*hookBody)
	if hb == nil || hb.release != nil {
		return nil, errors.New("readHookBody: the route lacks limitHookMemory, or the body was read already")
	}
	r := c.Request
	if r.ContentLength > HookBodyLimit {
		return nil, domain.Errorf(domain.ETOOLARGE, "request body is larger than %d bytes", HookBodyLimit)
	}
	n := r.ContentLength
	if n < 0 {
		n = HookBodyLimit
	}
	n = max(n, minHookReservation)
	release, reason := s.hookBudget.reserve(r.Context(), tenantID, n)
	if release == nil {
		s.hookBudget.refused.WithLabelValues(reason).Inc()
		c.Header("Retry-After", "1")
		if reason == refusedTenantShare {
			return nil, domain.Errorf(domain.EUNAVAILABLE, "this tenant's hooks are already receiving %d MiB of bodies at once, its share of the server; retry shortly",
				s.hookBudget.share>>20)
		}
		return nil, domain.Errorf(domain.EUNAVAILABLE, "too many large requests are being read; retry shortly")
	}
	hb.release = release

	// The deadline replaces the server's ReadTimeout for this request. Handlers served without a
	// connection (tests' recorders) have no deadline to set; then there is none to lift either.
	rc := http.NewResponseController(c.Writer)
	armed := rc.SetReadDeadline(time.Now().Add(s.hookBudget.deadline(n))) == nil
	body, err := web.ReadBody(c.Writer, r, HookBodyLimit)
	if domain.ErrorCode(err) == domain.ETIMEOUT {
		s.hookBudget.refused.WithLabelValues(refusedSlowBody).Inc()
		// The rest of the body may still be on its way: do not wait for it, close.
		c.Header("Connection", "close")
		return nil, err
	}
	if armed {
		// The body is in; the connection now waits for the next request, and a deadline left
		// behind would cancel this request's context (and its commit) when it passed.
		rc.SetReadDeadline(time.Time{})
	}
	return body, err
}
