package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// guard bounds every wait on the loop's goroutine; reaching it is a failure, never a step.
const guard = 20 * time.Second

// fakeClock is the loop's clock: each wait the loop asks for is handed to the test, which ends
// it (and moves the time on) when it chooses.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	unfired int
	asked   int
	onAfter func() // runs on the loop's goroutine just before it waits
	waits   chan fakeWait
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), waits: make(chan fakeWait, 100)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.mu.Lock()
	c.unfired++
	c.asked++
	hook := c.onAfter
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	c.waits <- w
	return w.fire
}

// next is the loop's next wait.
func (c *fakeClock) next(t *testing.T) fakeWait {
	t.Helper()
	return recv(t, c.waits, "the loop to wait")
}

// fire moves the clock on by step and ends w.
func (c *fakeClock) fire(w fakeWait, step time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(step)
	c.unfired--
	now := c.t
	c.mu.Unlock()
	w.fire <- now
}

func (c *fakeClock) counts() (unfired, asked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unfired, c.asked
}

// recorder keeps the loop's log lines.
type recorder struct {
	mu   sync.Mutex
	recs []record
}

type record struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]any{}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, record{rec.Level, rec.Message, m})
	return nil
}

func (r *recorder) at(level slog.Level) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record
	for _, rec := range r.recs {
		if rec.level == level {
			out = append(out, rec)
		}
	}
	return out
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// newLoop returns a loop on clock, logging to rec, closed when the test ends.
func newLoop(t *testing.T, clock *fakeClock, rec *recorder, step func(context.Context) (bool, error)) *Loop {
	t.Helper()
	if rec == nil {
		rec = &recorder{}
	}
	l := &Loop{Name: "sparkpost processor", Log: slog.New(rec), Step: step, now: clock.now, after: clock.after}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func start(t *testing.T, l *Loop) {
	t.Helper()
	if err := l.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func TestWakeRunsStep(t *testing.T) {
	clock := newFakeClock()
	ran := make(chan struct{}, 10)
	l := newLoop(t, clock, nil, func(context.Context) (bool, error) { ran <- struct{}{}; return false, nil })
	l.Poll = time.Hour
	start(t, l)
	recv(t, ran, "the first round, at Start")
	if err := l.Ready(context.Background()); err != nil {
		t.Fatalf("Ready while running: %v", err)
	}
	if w := clock.next(t); w.d != time.Hour {
		t.Fatalf("idle wait = %v, want Poll (1h)", w.d)
	}
	l.Wake()
	recv(t, ran, "the round a Wake asks for") // the clock never fires: only the Wake can run it
	if w := clock.next(t); w.d != time.Hour {
		t.Fatalf("idle wait after the woken round = %v, want Poll (1h)", w.d)
	}
}

func TestMoreRunsAgainAtOnce(t *testing.T) {
	clock := newFakeClock()
	asked := make(chan int, 10)
	calls := 0
	l := newLoop(t, clock, nil, func(context.Context) (bool, error) {
		calls++
		_, n := clock.counts()
		asked <- n
		return calls < 4, nil
	})
	l.Poll = time.Hour
	start(t, l)
	for i := 1; i <= 4; i++ {
		if n := recv(t, asked, "a round"); n != 0 {
			t.Fatalf("round %d ran after %d waits; more=true must run the next round at once", i, n)
		}
	}
	if w := clock.next(t); w.d != time.Hour {
		t.Fatalf("wait after more=false = %v, want Poll (1h)", w.d)
	}
}

func TestFailuresBackOffAndLogOncePerInterval(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	ran := make(chan int, 20)
	calls := 0
	var l *Loop
	l = newLoop(t, clock, rec, func(context.Context) (bool, error) {
		calls++
		if unfired, _ := clock.counts(); unfired > 0 {
			t.Errorf("round %d ran before its backoff ended", calls)
		}
		ran <- calls
		if calls <= 8 {
			return false, errors.New("database is locked")
		}
		return false, nil
	})
	l.MinBackoff, l.MaxBackoff, l.LogEvery = time.Second, 10*time.Second, time.Minute
	// Every wait begins with a Wake, which must not cut a backoff short.
	clock.onAfter = l.Wake
	start(t, l)

	// Each failure's wait: doubling from 1 s, capped at 10 s, with jitter in [cap/2, cap).
	for i := 1; i <= 8; i++ {
		recv(t, ran, "a failing round")
		w := clock.next(t)
		ceil := min(time.Second<<(i-1), 10*time.Second)
		if w.d < ceil/2 || w.d >= ceil {
			t.Errorf("wait after failure %d = %v, want in [%v, %v)", i, w.d, ceil/2, ceil)
		}
		clock.fire(w, 25*time.Second) // failures at 0 s, 25 s, … 175 s
	}
	recv(t, ran, "the round that succeeds") // at 200 s
	clock.mu.Lock()
	clock.onAfter = nil
	clock.mu.Unlock()
	l.Wake()
	recv(t, ran, "a round after the recovery") // the recovery line is written by now

	// Logged: the first failure, then one a minute with what it left out.
	want := []struct{ failures, suppressed int64 }{{1, 0}, {4, 2}, {7, 2}}
	errs := rec.at(slog.LevelError)
	if len(errs) != len(want) {
		t.Fatalf("%d error lines for 8 failures over 175 s, want %d: %+v", len(errs), len(want), errs)
	}
	for i, e := range errs {
		if e.msg != "sparkpost processor failed" || e.attrs["error"] != "database is locked" ||
			e.attrs["failures"] != want[i].failures || e.attrs["suppressed"] != want[i].suppressed {
			t.Errorf("error line %d = %q %v, want failures=%d suppressed=%d", i, e.msg, e.attrs, want[i].failures, want[i].suppressed)
		}
	}
	infos := rec.at(slog.LevelInfo)
	if len(infos) != 1 || infos[0].msg != "sparkpost processor recovered after 8 failures" || infos[0].attrs["failing_for"] != "3m20s" {
		t.Fatalf("info lines = %+v, want one recovery after 8 failures, failing for 3m20s", infos)
	}
}

func TestBackoffIsNeverShorterThanPoll(t *testing.T) {
	clock := newFakeClock()
	l := newLoop(t, clock, nil, func(context.Context) (bool, error) { return false, errors.New("disk I/O error") })
	l.Poll = time.Hour
	start(t, l)
	if w := clock.next(t); w.d != time.Hour {
		t.Fatalf("wait after a failure = %v, want Poll (1h): a failing loop must not run more often", w.d)
	}
}

func TestStepPanicIsAFailure(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	ran := make(chan int, 10)
	calls := 0
	l := newLoop(t, clock, rec, func(context.Context) (bool, error) {
		calls++
		if calls == 1 {
			panic("poisoned record")
		}
		ran <- calls
		return false, nil
	})
	start(t, l)
	w := clock.next(t)
	if w.d < 500*time.Millisecond || w.d >= time.Second {
		t.Fatalf("wait after a panic = %v, want the first backoff, in [0.5s, 1s)", w.d)
	}
	clock.fire(w, w.d)
	recv(t, ran, "the round after the panic")
	l.Wake()
	recv(t, ran, "one more round") // the recovery line is written by now
	if err := l.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after a recovered panic: %v", err)
	}
	errs := rec.at(slog.LevelError)
	if len(errs) != 1 || errs[0].msg != "sparkpost processor failed" || errs[0].attrs["error"] != "panic: poisoned record" {
		t.Fatalf("error lines = %+v, want one naming the loop and the panic", errs)
	}
	if stack, _ := errs[0].attrs["stack"].(string); !strings.Contains(stack, "TestStepPanicIsAFailure") {
		t.Errorf("stack does not show where the panic was:\n%s", stack)
	}
	infos := rec.at(slog.LevelInfo)
	if len(infos) != 1 || infos[0].msg != "sparkpost processor recovered after 1 failure" {
		t.Fatalf("info lines = %+v, want one recovery", infos)
	}
}

func TestFirstDelaysTheFirstRound(t *testing.T) {
	clock := newFakeClock()
	ran := make(chan struct{}, 10)
	l := newLoop(t, clock, nil, func(context.Context) (bool, error) { ran <- struct{}{}; return false, nil })
	l.First, l.Poll = time.Minute, time.Hour
	start(t, l)
	w := clock.next(t)
	if w.d != time.Minute || len(ran) != 0 {
		t.Fatalf("first wait = %v with %d rounds run, want First (1m) before any", w.d, len(ran))
	}
	clock.fire(w, w.d)
	recv(t, ran, "the first round")
	if w := clock.next(t); w.d != time.Hour {
		t.Fatalf("wait after the first round = %v, want Poll (1h)", w.d)
	}
}

func TestLoopOutlivesStartContext(t *testing.T) {
	clock := newFakeClock()
	ran := make(chan error, 10)
	l := newLoop(t, clock, nil, func(ctx context.Context) (bool, error) { ran <- ctx.Err(); return false, nil })
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	recv(t, ran, "the first round")
	cancel()
	l.Wake()
	if err := recv(t, ran, "a round after the start context ended"); err != nil {
		t.Fatalf("Step's context: %v, want alive until Close", err)
	}
}

func TestCloseWaitsForTheRunningStep(t *testing.T) {
	clock := newFakeClock()
	rec := &recorder{}
	started, cancelled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	l := newLoop(t, clock, rec, func(ctx context.Context) (bool, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		<-release
		return false, ctx.Err()
	})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the Close of newLoop's cleanup, should the test fail early
	start(t, l)
	recv(t, started, "Step to start")
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		closed <- l.Close(ctx)
	}()
	recv(t, cancelled, "Close to cancel Step's context")
	if err := l.Ready(context.Background()); err == nil {
		t.Fatal("Ready while closing: nil, want an error")
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while Step still ran", err)
	default:
	}
	unblock()
	if err := recv(t, closed, "Close to return"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Ready(context.Background()); err == nil || err.Error() != "sparkpost processor is not running" {
		t.Fatalf("Ready after Close = %v, want \"sparkpost processor is not running\"", err)
	}
	if errs := rec.at(slog.LevelError); len(errs) != 0 {
		t.Fatalf("logged %+v; a Step cancelled by Close is not a failure", errs)
	}
}

func TestCloseGivesUpWhenItsContextEnds(t *testing.T) {
	clock := newFakeClock()
	started, release := make(chan struct{}), make(chan struct{})
	l := newLoop(t, clock, nil, func(context.Context) (bool, error) {
		close(started)
		<-release // deaf to its context
		return false, nil
	})
	t.Cleanup(func() { close(release) }) // runs before newLoop's Close, which then returns nil
	start(t, l)
	recv(t, started, "Step to start")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Close(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "sparkpost processor") {
		t.Fatalf("Close with an ended context = %v, want context.Canceled naming the loop", err)
	}
}

func TestCloseBeforeStartAndTwice(t *testing.T) {
	l := &Loop{Name: "event store rollup", Step: func(context.Context) (bool, error) { return false, nil }}
	l.Wake() // before Start: must not block
	for i := range 2 {
		if err := l.Close(context.Background()); err != nil {
			t.Fatalf("Close %d before Start: %v", i+1, err)
		}
	}
	if err := l.Ready(context.Background()); err == nil {
		t.Fatal("Ready of a loop never started: nil, want an error")
	}
	if err := l.Start(context.Background()); err == nil {
		t.Fatal("Start after Close: nil, want an error")
	}
	if err := l.Ready(context.Background()); err == nil {
		t.Fatal("Ready after a refused Start: nil, want an error")
	}
}

func TestStartTwiceAndCloseTwice(t *testing.T) {
	clock := newFakeClock()
	l := newLoop(t, clock, nil, func(context.Context) (bool, error) { return false, nil })
	start(t, l)
	start(t, l)
	if err := l.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	for i := range 2 {
		if err := l.Close(context.Background()); err != nil {
			t.Fatalf("Close %d: %v", i+1, err)
		}
	}
	if err := l.Ready(context.Background()); err == nil {
		t.Fatal("Ready after Close: nil, want an error")
	}
}

func TestStartWithoutStep(t *testing.T) {
	l := &Loop{Name: "nothing"}
	if err := l.Start(context.Background()); err == nil {
		t.Fatal("Start without Step: nil, want an error")
	}
}
