package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// Load shape of SPEC §7: SparkPost batches of 1,000 events, about 1 MB.
const (
	batchEvents = 1000
	eventBytes  = 1000
	posters     = 8 // concurrent SparkPost connections in the closed-loop phases
	tenants     = 8
)

var batchSeq atomic.Int64

// refusals counts the batches the hooks refused (503) for a full inbox, all phases together.
var refusals atomic.Int64

// freshBatch returns a batch of n events whose ids were never used in this run.
func freshBatch(n int) []byte {
	return e2e.DeliveryBatch(fmt.Sprintf("b%d", batchSeq.Add(1)), n, eventBytes)
}

func httpClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = conns*2, conns*2
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// storeCeiling measures how fast the store alone commits raw 1,000-event batches (the work the
// hook does after authentication, without HTTP): the ceiling ingest is compared with.
func storeCeiling(ctx context.Context, dir string, phase time.Duration, r *Report) error {
	db, err := store.Open(ctx, filepath.Join(dir, "ceiling", "switchboard.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	tn, err := db.CreateTenant(ctx, "ceiling")
	if err != nil {
		return err
	}
	src := &store.Source{ID: "src_ceilingceilingc", TenantID: tn.ID, Name: "ceiling", Auth: "basic"}
	if err := db.CreateSource(ctx, src, "u", "h"); err != nil {
		return err
	}
	pool := make([][]byte, posters)
	for i := range pool {
		pool[i] = freshBatch(batchEvents)
	}
	var batches atomic.Int64
	deadline := time.Now().Add(phase)
	start := time.Now()
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for w := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				b := &store.InboxBatch{TenantID: tn.ID, SourceID: src.ID, BatchID: fmt.Sprintf("w%d-%d", w, n), Body: pool[w]}
				if _, err := db.AddBatch(ctx, b); err != nil {
					once.Do(func() { first = err })
					return
				}
				batches.Add(1)
			}
		}()
	}
	wg.Wait()
	r.StoreCeiling = float64(batches.Load()*batchEvents) / time.Since(start).Seconds()
	return first
}

// server starts a fresh server and returns it with an operator client.
func server(bin, dir, name string, env ...string) (*e2e.Proc, *e2e.Client, error) {
	p, err := e2e.StartArgs(bin, filepath.Join(dir, name), []string{"--metrics-addr", "127.0.0.1:0"}, env...)
	if err != nil {
		return nil, nil, err
	}
	tok, err := p.OperatorToken()
	if err != nil {
		p.Kill()
		return nil, nil, err
	}
	return p, &e2e.Client{Base: p.URL(), Token: tok, HTTP: httpClient(64)}, nil
}

// makeTenants creates n SparkPost tenants whose write keys point at endpoint, each sent at
// most rps requests/s (0: the default, 50); capped (if ≥ 0) names the tenant limited to capRPS.
func makeTenants(op *e2e.Client, n int, endpoint string, rps, capped, capRPS int) ([]*e2e.SparkPostTenant, error) {
	var ts []*e2e.SparkPostTenant
	for i := range n {
		rps := rps
		if i == capped {
			rps = capRPS
		}
		t, err := e2e.NewSparkPostTenant(op, fmt.Sprintf("bench-%d", i), endpoint, fmt.Sprintf("wk_bench_%d", i), rps)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// closedLoop posts fresh batches of size events from conns connections, round-robin over the
// tenants, for phase; it returns the acknowledged events, the ack latencies and the first error.
func closedLoop(ts []*e2e.SparkPostTenant, phase time.Duration, conns, size int) (events int64, lat []time.Duration, elapsed time.Duration, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var acked atomic.Int64
	var next atomic.Int64
	deadline := time.Now().Add(phase)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1)
				t := ts[int(i)%len(ts)]
				batch := freshBatch(size)
				sent := time.Now()
				status, body, e := t.Post(batch, fmt.Sprintf("cl-%d", i))
				for e == nil && status == 503 && time.Now().Before(deadline) {
					// The tenant's inbox is at its bound: send the batch again shortly, as
					// SparkPost does (sooner than it would, to keep the server at its limit).
					refusals.Add(1)
					time.Sleep(time.Second)
					status, body, e = t.Post(batch, fmt.Sprintf("cl-%d", i))
				}
				if e == nil && status == 503 {
					return // the phase ended while the batch was refused: it was never acknowledged
				}
				d := time.Since(sent)
				mu.Lock()
				if e == nil && status != 200 {
					e = fmt.Errorf("hook answered %d: %s", status, body)
				}
				if e != nil {
					if err == nil {
						err = e
					}
					mu.Unlock()
					return
				}
				lat = append(lat, d)
				mu.Unlock()
				acked.Add(int64(size))
			}
		}()
	}
	wg.Wait()
	return acked.Load(), lat, time.Since(start), err
}

// openModel sends batches at a fixed rate for d, each on its own goroutine, and measures latency
// from the moment each was due (so a slow server cannot hide its queueing).
func openModel(ts []*e2e.SparkPostTenant, rate float64, d time.Duration) Step {
	s := Step{TargetBatchesPerS: rate}
	interval := time.Duration(float64(time.Second) / rate)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	n := int(d.Seconds() * rate)
	batches := make([][]byte, n) // generated ahead, so the generator does not steal the schedule
	for i := range batches {
		batches[i] = freshBatch(batchEvents)
	}
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, err := ts[i%len(ts)].Post(batches[i], fmt.Sprintf("om-%d-%d", int(rate*100), i))
			l := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || status != 200 {
				s.Errors++
				return
			}
			lat = append(lat, l)
		}()
	}
	wg.Wait()
	s.AchievedPerS = float64(len(lat)) / time.Since(start).Seconds()
	s.P50ms, s.P99ms = pct(lat, 50), pct(lat, 99)
	return s
}

func pct(ls []time.Duration, p int) float64 {
	if len(ls) == 0 {
		return 0
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return float64(s[max(i, 0)].Microseconds()) / 1000
}

// ingestServer starts a fresh server (with env) and n SparkPost tenants whose sources are
// paused: batches are stored and processed, nothing is sent. stop kills the server and the fake
// Segment its write keys point at.
func ingestServer(bin, dir, name string, n int, env ...string) (p *e2e.Proc, op *e2e.Client, ts []*e2e.SparkPostTenant, stop func(), err error) {
	fake := fakesegment.New()
	fake.Lean = true
	if p, op, err = server(bin, dir, name, env...); err != nil {
		fake.Close()
		return nil, nil, nil, nil, err
	}
	stop = func() { p.Kill(); fake.Close() }
	if ts, err = makeTenants(op, n, fake.URL, 1000, -1, 0); err != nil {
		stop()
		return nil, nil, nil, nil, err
	}
	for _, t := range ts {
		if status, body, err := t.Admin.Do("PATCH", "/api/v1/tenants/"+t.ID+"/sources/"+t.SourceID, []byte(`{"paused": true}`)); err != nil || status != 200 {
			stop()
			return nil, nil, nil, nil, fmt.Errorf("pause: %d %s %v", status, body, err)
		}
	}
	return p, op, ts, stop, nil
}

// ingest measures SparkPost batch acknowledgement with sending paused: closed loop for the
// maximum, the time until the processor has caught up (the sustained rate counts it), then an
// open-model sweep at fractions of the maximum, and 100-event batches from 16 connections.
func ingest(ctx context.Context, bin, dir string, phase time.Duration, r *Report) error {
	// No inbox bound here: this measures how fast batches are taken; sustained() measures what
	// the processor keeps up with, under the default bound.
	p, op, ts, stop, err := ingestServer(bin, dir, "ingest", tenants, "SWITCHBOARD_INBOX_BACKLOG_MB=1000000")
	if err != nil {
		return err
	}
	defer stop()
	cpu := p.CPUSeconds()
	prof := startProfile(p, "ingest", phase)
	events, lat, elapsed, err := closedLoop(ts, phase, posters, batchEvents)
	if err != nil {
		return err
	}
	if err := prof(); err != nil {
		return err
	}
	prof = startProfile(p, "ingest-drain", min(phase, 10*time.Second))
	r.Ingest = float64(events) / elapsed.Seconds()
	r.IngestRequests = r.Ingest / batchEvents
	r.IngestP50, r.IngestP99 = pct(lat, 50), pct(lat, 99)
	drain, err := drainInbox(op, 10*phase+time.Minute)
	if err != nil {
		return err
	}
	if err := prof(); err != nil {
		return err
	}
	r.IngestDrainS = drain.Seconds()
	r.SustainedIngest = float64(events) / (elapsed + drain).Seconds()
	r.IngestCPUus = perEvent(p.CPUSeconds()-cpu, events)
	for _, frac := range []float64{0.25, 0.5, 0.75} {
		s := openModel(ts, r.IngestRequests*frac, phase/2)
		r.Sweep = append(r.Sweep, s)
		if frac == 0.5 {
			r.HalfRateP50, r.HalfRateP99 = s.P50ms, s.P99ms
		}
	}
	if _, err := drainInbox(op, 10*phase+time.Minute); err != nil {
		return err
	}
	cpu = p.CPUSeconds()
	events, _, elapsed, err = closedLoop(ts, phase, 16, 100)
	if err != nil {
		return err
	}
	drain, err = drainInbox(op, 10*phase+time.Minute)
	if err != nil {
		return err
	}
	r.Ingest100 = float64(events) / elapsed.Seconds()
	r.Sustained100 = float64(events) / (elapsed + drain).Seconds()
	r.Ingest100CPUus = perEvent(p.CPUSeconds()-cpu, events)
	r.PeakRSSMiB = max(r.PeakRSSMiB, p.PeakRSSMiB())
	_, err = p.Stop()
	return err
}

// sustained posts 1,000-event batches from 8 connections for a long phase, all for one tenant, to
// a server with the default inbox bound, sending refused batches again as SparkPost does, then waits for the inbox
// to drain: acknowledged events over the phase and the drain is the rate the system carries.
func sustained(ctx context.Context, bin, dir string, phase time.Duration, r *Report) error {
	p, op, ts, stop, err := ingestServer(bin, dir, "sustained", 1)
	if err != nil {
		return err
	}
	defer stop()
	cpu, refused := p.CPUSeconds(), refusals.Load()
	busy0, err := writerBusy(op)
	if err != nil {
		return err
	}
	start := time.Now()
	prof := startProfile(p, "sustained", phase)
	events, _, elapsed, err := closedLoop(ts, phase, posters, batchEvents)
	if err != nil {
		return err
	}
	if err := prof(); err != nil {
		return err
	}
	drain, err := drainInbox(op, 10*phase+time.Minute)
	if err != nil {
		return err
	}
	busy1, err := writerBusy(op)
	if err != nil {
		return err
	}
	r.SustainedWriterBusy = (busy1 - busy0) / time.Since(start).Seconds()
	r.SustainedPhaseS, r.SustainedDrainS = elapsed.Seconds(), drain.Seconds()
	r.SustainedAcked = float64(events) / elapsed.Seconds()
	r.SustainedIngest = float64(events) / (elapsed + drain).Seconds()
	r.SustainedRefused = refusals.Load() - refused
	r.SustainedCPUus = perEvent(p.CPUSeconds()-cpu, events)
	r.PeakRSSMiB = max(r.PeakRSSMiB, p.PeakRSSMiB())
	_, err = p.Stop()
	return err
}

// writerBusy reads the seconds the server's database writer has spent in transactions, both
// lanes together, from /metrics.
func writerBusy(op *e2e.Client) (float64, error) {
	status, body, err := op.Do("GET", "/metrics", nil)
	if err != nil || status != 200 {
		return 0, fmt.Errorf("/metrics: %d %v", status, err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "switchboard_store_writer_busy_seconds_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics: %q: %v", line, err)
			}
			sum += f
		}
	}
	return sum, nil
}

// drainInbox waits until the server's inbox holds no unprocessed batch (its /metrics gauge)
// and returns how long that took.
func drainInbox(op *e2e.Client, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		status, body, err := op.Do("GET", "/metrics", nil)
		if err != nil {
			return 0, err
		}
		if status != 200 {
			return 0, fmt.Errorf("/metrics answered %d", status)
		}
		if strings.Contains(string(body), "\nswitchboard_inbox_unprocessed_batches 0\n") {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("the inbox still held batches after %s", limit)
		}
		// A scrape also computes the outbox gauges (a scan of the pending deliveries): often
		// enough to time a drain of tens of seconds, rarely enough not to slow it.
		time.Sleep(500 * time.Millisecond)
	}
}

// perEvent is CPU seconds spent on n events, in microseconds per event.
func perEvent(cpu float64, n int64) float64 {
	if n == 0 {
		return 0
	}
	return cpu * 1e6 / float64(n)
}

// endToEnd posts for one phase to n tenants sent at most rps requests/s each (capped, if ≥ 0,
// names one limited to 10/s) and measures the rate at which every acknowledged event reaches
// the fake Segment, counting any that never do.
func endToEnd(ctx context.Context, bin, dir, name string, phase time.Duration, n, rps, capped int) (e2eResult, error) {
	var res e2eResult
	fake := fakesegment.New()
	fake.Lean = true
	defer fake.Close()
	p, op, err := server(bin, dir, name)
	if err != nil {
		return res, err
	}
	defer p.Kill()
	ts, err := makeTenants(op, n, fake.URL, rps, capped, 10)
	if err != nil {
		return res, err
	}
	cpu := p.CPUSeconds()
	start := time.Now()
	prof := startProfile(p, name, phase)
	events, _, _, err := closedLoop(ts, phase, posters, batchEvents)
	if err != nil {
		return res, err
	}
	if err := prof(); err != nil {
		return res, err
	}
	deadline := time.Now().Add(10*phase + time.Minute)
	for fake.UniqueCount() < int(events) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	got := fake.UniqueCount()
	res.Sent, res.Lost = int(events), int(events)-got
	res.Rate = float64(got) / elapsed.Seconds()
	if reqs, bytes := fake.Accepted(); reqs > 0 {
		res.RequestsPerS, res.MessagesPerRequest, res.KBPerRequest = float64(reqs)/elapsed.Seconds(), float64(got)/float64(reqs), float64(bytes)/float64(reqs)/1000
	}
	res.CPUus = perEvent(p.CPUSeconds()-cpu, int64(got))
	res.RSS = p.PeakRSSMiB()
	if fi, err := os.Stat(filepath.Join(dir, name, "switchboard.db-wal")); err == nil {
		res.WALMiB = float64(fi.Size()) / (1 << 20)
	}
	_, err = p.Stop()
	return res, err
}

// e2eResult is what one end-to-end phase measured.
type e2eResult struct {
	Rate       float64
	Sent, Lost int
	CPUus      float64
	RSS        float64
	WALMiB     float64
	// What the fake Segment took: requests/s over the phase and its drain, and how full they were.
	RequestsPerS, MessagesPerRequest, KBPerRequest float64
}
