// Package worker runs serve's background loops (the inbox processor, the event store's upkeep):
// one Step at a time, again when woken, when Poll passes or when Step says there is more, with
// backoff while Step fails and a log that names a failing loop without repeating it every round.
package worker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of a Loop's zero fields.
const (
	defaultMinBackoff = time.Second
	defaultMaxBackoff = time.Minute
	defaultLogEvery   = time.Minute
)

// Loop runs Step in the background from Start until Close; it is a serve worker (Start, Close,
// Ready). Set its fields before Start and do not change them after.
type Loop struct {
	// Name names the loop in its log lines and in Ready's error ("sparkpost processor").
	Name string
	// Log receives the failure and recovery lines (nil: slog.Default()).
	Log *slog.Logger
	// Step does one round of work. more=true runs it again at once: there is more to do now.
	// Step must end soon after ctx ends; Close waits for it.
	Step func(ctx context.Context) (more bool, err error)
	// Poll is how long the loop waits after a round with nothing more to do (0: until Wake).
	Poll time.Duration
	// First delays the first Step after Start (0: at once), so that periodic upkeep does not
	// compete with start-up; a Wake ends it early.
	First time.Duration
	// MinBackoff and MaxBackoff bound the wait after consecutive failures: MinBackoff after
	// the first, doubling up to MaxBackoff, with jitter (defaults 1 s and 1 min). The wait is
	// never shorter than Poll: a failing dependency does not earn more rounds than a healthy
	// one. A Wake does not end it: wakes come with new work (a committed batch), and a burst of
	// webhooks would otherwise become a burst of retries against whatever is failing.
	MinBackoff, MaxBackoff time.Duration
	// LogEvery is how often a loop that keeps failing logs again (default 1 min); the line
	// counts the failures it left out. The first failure and the recovery are always logged.
	LogEvery time.Duration

	// Test hooks: the clock the backoff and the log limit run on.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time

	once sync.Once
	wake chan struct{}

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	running bool
	closed  bool
}

// Start runs the loop on a context of its own, which keeps ctx's values but not its deadline
// (serve starts its workers with a start-up context). Starting a running loop does nothing; a
// closed loop stays closed, so that a late Start cannot revive it after what it uses is gone.
func (l *Loop) Start(ctx context.Context) error {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return fmt.Errorf("%s: started after Close", l.name())
	case l.running:
		return nil
	case l.Step == nil:
		return fmt.Errorf("%s: no Step", l.name())
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done, l.running = cancel, make(chan struct{}), true
	go l.run(runCtx, l.done)
	return nil
}

// Wake asks for a round as soon as the loop is free (not while it backs off); it never blocks,
// and wakes that arrive while a round runs make one more round, not one each.
func (l *Loop) Wake() {
	l.init()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Close cancels the loop's context and waits for the running Step to return, or until ctx ends
// (then Step finishes on its own). It may be called before Start and more than once.
func (l *Loop) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closed, l.running = true, false
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s is still stopping: %w", l.name(), ctx.Err())
	}
}

// Ready fails unless the loop runs: before Start, after Close, or if its goroutine ended. A
// loop that runs but fails is ready; its log says so.
func (l *Loop) Ready(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return fmt.Errorf("%s is not running", l.name())
	}
	return nil
}

func (l *Loop) init() {
	l.once.Do(func() { l.wake = make(chan struct{}, 1) })
}

func (l *Loop) run(ctx context.Context, done chan struct{}) {
	defer func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
		close(done)
	}()
	if l.First > 0 && !l.sleep(ctx, l.First, true) {
		return
	}
	var s streak
	for {
		select { // this round covers the wakes so far
		case <-l.wake:
		default:
		}
		more, err := l.step(ctx)
		if ctx.Err() != nil {
			// Closing: a cancelled Step is expected, a panic is still a bug.
			if p, ok := err.(*panicError); ok {
				l.log().Error(l.name()+" panicked while stopping", "worker", l.name(), "error", p.Error(), "stack", string(p.stack))
			}
			return
		}
		wait, wakeable := l.Poll, true
		if err != nil {
			l.failed(&s, err)
			wait, wakeable = max(l.backoff(s.failures), l.Poll), false
		} else {
			l.succeeded(&s)
			if more {
				continue
			}
		}
		if !l.sleep(ctx, wait, wakeable) {
			return
		}
	}
}

// step runs Step and turns a panic into a failure: one bad record must not take the process
// (and the webhooks it acknowledges) down with it, nor stop the loop for good. A Step that
// holds its work in a transaction it rolls back on the way out leaves nothing half done.
func (l *Loop) step(ctx context.Context) (more bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			more, err = false, &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return l.Step(ctx)
}

// sleep waits d (0: no timer), or for a Wake if wakeable; false means the loop is closing.
func (l *Loop) sleep(ctx context.Context, d time.Duration, wakeable bool) bool {
	var timer <-chan time.Time
	if d > 0 {
		timer = l.afterFunc()(d)
	}
	var wake <-chan struct{}
	if wakeable {
		wake = l.wake
	}
	select {
	case <-ctx.Done():
		return false
	case <-timer:
	case <-wake:
	}
	return true
}

// backoff is the wait after n consecutive failures: doubling, capped, with jitter in [d/2, d)
// so that loops failing on the same cause do not retry in step.
func (l *Loop) backoff(n int) time.Duration {
	lo, hi := cmp.Or(l.MinBackoff, defaultMinBackoff), cmp.Or(l.MaxBackoff, defaultMaxBackoff)
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if h := d / 2; h > 0 {
		d = h + rand.N(h)
	}
	return d
}

// streak is the loop's current run of failures, owned by its goroutine.
type streak struct {
	failures   int
	since      time.Time
	suppressed int
	limit      *rate.Limiter
}

func (l *Loop) failed(s *streak, err error) {
	now := l.nowFunc()()
	if s.failures == 0 {
		s.since = now
		s.limit = rate.NewLimiter(rate.Every(cmp.Or(l.LogEvery, defaultLogEvery)), 1)
	}
	s.failures++
	if !s.limit.AllowN(now, 1) {
		s.suppressed++
		return
	}
	attrs := []any{"worker", l.name(), "error", err.Error(), "failures", s.failures, "suppressed", s.suppressed}
	if p, ok := err.(*panicError); ok {
		attrs = append(attrs, "stack", string(p.stack))
	}
	l.log().Error(l.name()+" failed", attrs...)
	s.suppressed = 0
}

func (l *Loop) succeeded(s *streak) {
	if s.failures == 0 {
		return
	}
	unit := "failures"
	if s.failures == 1 {
		unit = "failure"
	}
	l.log().Info(fmt.Sprintf("%s recovered after %d %s", l.name(), s.failures, unit),
		"worker", l.name(), "failures", s.failures, "failing_for", l.nowFunc()().Sub(s.since).String())
	*s = streak{}
}

// panicError is a Step's panic, kept with its stack for the log.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

func (l *Loop) name() string { return cmp.Or(l.Name, "worker") }

func (l *Loop) log() *slog.Logger {
	if l.Log == nil {
		return slog.Default()
	}
	return l.Log
}

func (l *Loop) nowFunc() func() time.Time {
	if l.now == nil {
		return time.Now
	}
	return l.now
}

func (l *Loop) afterFunc() func(time.Duration) <-chan time.Time {
	if l.after == nil {
		return time.After
	}
	return l.after
}
