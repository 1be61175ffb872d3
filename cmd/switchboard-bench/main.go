// Command switchboard-bench measures Switchboard against the targets of SPEC §7 in one run, on
// loopback: it builds and starts the real server on a fresh database, drives it with SparkPost
// batches (and Segment messages), points it at a fake Segment, and prints the ratios with their
// goals as a table and as JSON. Ratios compare figures measured in the same run on the same
// machine, so they say something even on a busy or slow box; absolute figures do not.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one run measured; it is also written as JSON.
type Report struct {
	When      time.Time `json:"when"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	Phase     float64   `json:"phase_seconds"`

	StoreCeiling        float64 `json:"store_insert_ceiling_events_per_s"`
	Ingest              float64 `json:"sparkpost_ingest_events_per_s"`
	IngestRequests      float64 `json:"sparkpost_ingest_batches_per_s"`
	IngestP50           float64 `json:"sparkpost_ack_p50_ms"`
	IngestP99           float64 `json:"sparkpost_ack_p99_ms"`
	IngestDrainS        float64 `json:"sparkpost_ingest_drain_seconds"`
	SustainedIngest     float64 `json:"sparkpost_sustained_ingest_events_per_s"`
	SustainedAcked      float64 `json:"sparkpost_sustained_phase_acked_events_per_s"`
	SustainedPhaseS     float64 `json:"sparkpost_sustained_phase_seconds"`
	SustainedDrainS     float64 `json:"sparkpost_sustained_drain_seconds"`
	SustainedRefused    int64   `json:"sparkpost_sustained_refused_batches"`
	SustainedCPUus      float64 `json:"sparkpost_sustained_cpu_us_per_event"`
	SustainedWriterBusy float64 `json:"sparkpost_sustained_writer_busy_fraction"`
	IngestCPUus         float64 `json:"sparkpost_ingest_cpu_us_per_event"`
	Ingest100           float64 `json:"sparkpost_ingest_100_per_batch_events_per_s"`
	Sustained100        float64 `json:"sparkpost_sustained_ingest_100_per_batch_events_per_s"`
	Ingest100CPUus      float64 `json:"sparkpost_ingest_100_per_batch_cpu_us_per_event"`
	HalfRateP50         float64 `json:"sparkpost_ack_p50_ms_at_half_rate"`
	HalfRateP99         float64 `json:"sparkpost_ack_p99_ms_at_half_rate"`
	Sweep               []Step  `json:"open_model_sweep"`
	EndToEnd            float64 `json:"end_to_end_events_per_s"`
	EndToEndSent        int     `json:"end_to_end_events"`
	EndToEndLost        int     `json:"end_to_end_lost"`
	EndToEndCPUus       float64 `json:"end_to_end_cpu_us_per_event"`
	EndToEndOne         float64 `json:"end_to_end_one_tenant_events_per_s"`
	EndToEndOneSent     int     `json:"end_to_end_one_tenant_events"`
	EndToEndOneLost     int     `json:"end_to_end_one_tenant_lost"`
	EndToEndOneCPUus    float64 `json:"end_to_end_one_tenant_cpu_us_per_event"`
	EndToEndOneReqPerS  float64 `json:"end_to_end_one_tenant_requests_per_s"`
	EndToEndOneMsgPerRq float64 `json:"end_to_end_one_tenant_messages_per_request"`
	EndToEndOneKBPerRq  float64 `json:"end_to_end_one_tenant_kb_per_request"`
	SegmentSingle       float64 `json:"segment_single_messages_per_s"`
	SegmentP99          float64 `json:"segment_single_ack_p99_ms"`
	SegmentSingleCPUus  float64 `json:"segment_single_cpu_us_per_message"`
	SegmentArrays8      float64 `json:"segment_arrays_of_100_at_8_messages_per_s"`
	SegmentArrays16     float64 `json:"segment_arrays_of_100_at_16_messages_per_s"`
	SegmentArraysCPUus  float64 `json:"segment_arrays_of_100_cpu_us_per_message"`
	PeakRSSMiB          float64 `json:"peak_rss_mib"`
	WALMiB              float64 `json:"wal_mib_at_end"`

	Ratios []Ratio  `json:"ratios"`
	Errors []string `json:"errors,omitempty"`
}

// Step is one rate of the open-model sweep.
type Step struct {
	TargetBatchesPerS float64 `json:"target_batches_per_s"`
	AchievedPerS      float64 `json:"achieved_batches_per_s"`
	P50ms             float64 `json:"p50_ms"`
	P99ms             float64 `json:"p99_ms"`
	Errors            int     `json:"errors"`
}

// Ratio is one SPEC §7 target with what this run measured.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
}

func main() {
	phase := flag.Duration("phase", 10*time.Second, "how long each load phase runs")
	sustainPhase := flag.Duration("sustain", 60*time.Second, "how long the sustained-ingest phase runs")
	out := flag.String("out", "bench-report.json", "where to write the JSON report")
	keep := flag.Bool("keep", false, "keep the temporary directory (database, logs)")
	only := flag.String("only", "", "run only the phases whose name matches this regular expression")
	flag.StringVar(&profileDir, "profile", "", "write a CPU profile of the server for each phase into this directory")
	flag.Parse()
	var err error
	if onlyRE, err = regexp.Compile(*only); err != nil {
		fail(fmt.Errorf("-only: %w", err))
	}
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			fail(err)
		}
	}

	dir, err := os.MkdirTemp("", "switchboard-bench")
	if err != nil {
		fail(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/switchboard").CombinedOutput(); err != nil {
		fail(fmt.Errorf("build: %v\n%s", err, out))
	}
	r := &Report{When: time.Now().UTC(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Phase: phase.Seconds()}
	ctx := context.Background()

	step(r, "store insert ceiling", func() error { return storeCeiling(ctx, dir, *phase, r) })
	step(r, "SparkPost ingest (closed loop, then open-model sweep)", func() error { return ingest(ctx, bin, dir, *phase, r) })
	step(r, fmt.Sprintf("SparkPost sustained ingest (%s under the default inbox bound, then the drain)", *sustainPhase), func() error {
		return sustained(ctx, bin, dir, *sustainPhase, r)
	})
	step(r, "end to end to a fake Segment, 8 tenants (one capped at 10 requests/s)", func() error {
		res, err := endToEnd(ctx, bin, dir, "e2e", *phase, tenants, 1000, 0)
		r.EndToEnd, r.EndToEndSent, r.EndToEndLost, r.EndToEndCPUus, r.WALMiB = res.Rate, res.Sent, res.Lost, res.CPUus, res.WALMiB
		r.PeakRSSMiB = max(r.PeakRSSMiB, res.RSS)
		return err
	})
	step(r, "end to end to a fake Segment, one tenant at the default 50 requests/s", func() error {
		res, err := endToEnd(ctx, bin, dir, "e2e-one", *phase, 1, 0, -1)
		r.EndToEndOne, r.EndToEndOneSent, r.EndToEndOneLost, r.EndToEndOneCPUus = res.Rate, res.Sent, res.Lost, res.CPUus
		r.EndToEndOneReqPerS, r.EndToEndOneMsgPerRq, r.EndToEndOneKBPerRq = res.RequestsPerS, res.MessagesPerRequest, res.KBPerRequest
		r.PeakRSSMiB = max(r.PeakRSSMiB, res.RSS)
		return err
	})
	step(r, "single-message Segment POSTs, 64 clients", func() error {
		res, err := segmentLoad(ctx, bin, dir, "segment", *phase, segmentClients, 1)
		r.SegmentSingle, r.SegmentP99, r.SegmentSingleCPUus = res.Rate, res.P99, res.CPUus
		r.PeakRSSMiB = max(r.PeakRSSMiB, res.RSS)
		return err
	})
	for _, conns := range []int{8, 16} {
		step(r, fmt.Sprintf("Segment POSTs of JSON arrays of 100, %d clients", conns), func() error {
			res, err := segmentLoad(ctx, bin, dir, fmt.Sprintf("segment-arrays-%d", conns), *phase, conns, 100)
			if conns == 8 {
				r.SegmentArrays8, r.SegmentArraysCPUus = res.Rate, res.CPUus
			} else {
				r.SegmentArrays16 = res.Rate
			}
			r.PeakRSSMiB = max(r.PeakRSSMiB, res.RSS)
			return err
		})
	}

	r.Ratios = ratios(r)
	print(r)
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("\nwrote %s\n", *out)
	if len(r.Errors) > 0 {
		os.Exit(1)
	}
}

// onlyRE selects the phases that run (-only).
var onlyRE *regexp.Regexp

// step runs one phase; a failed phase is reported and the run goes on with the next.
func step(r *Report, name string, f func() error) {
	if !onlyRE.MatchString(name) {
		return
	}
	fmt.Fprintf(os.Stderr, "== %s\n", name)
	start := time.Now()
	if err := f(); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", name, err))
		fmt.Fprintf(os.Stderr, "   FAILED: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "   done in %s, peak RSS of the servers so far %.0f MiB\n", time.Since(start).Round(time.Millisecond), r.PeakRSSMiB)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "switchboard-bench:", err)
	os.Exit(1)
}

func ratios(r *Report) []Ratio {
	var out []Ratio
	add := func(name string, v float64, goal string, met bool) {
		out = append(out, Ratio{Name: name, Value: v, Goal: goal, Met: met})
	}
	if r.StoreCeiling > 0 {
		v := r.Ingest / r.StoreCeiling
		add("SparkPost ingest / store insert ceiling", v, "≥ 0.6", v >= 0.6)
	}
	if r.Ingest > 0 {
		v := r.SustainedIngest / r.Ingest
		add("SparkPost sustained ingest / burst ingest", v, "close to 1 (≥ 0.9)", v >= 0.9)
		v = r.EndToEnd / r.Ingest
		add("end to end (8 tenants) / ingest", v, "≥ 0.5, zero loss", v >= 0.5 && r.EndToEndLost == 0)
		v = r.EndToEndOne / r.Ingest
		add("end to end (one tenant, 50 requests/s) / ingest", v, "≥ 0.5, zero loss", v >= 0.5 && r.EndToEndOneLost == 0)
	}
	add("Segment arrays of 100, 8 clients (messages/s)", r.SegmentArrays8, "≥ 28,000 (2× RudderStack's 14,473 on 2026-12-02)", r.SegmentArrays8 >= 28000)
	add("Segment arrays of 100, 16 clients (messages/s)", r.SegmentArrays16, "≥ 32,900 (2× RudderStack's 16,457)", r.SegmentArrays16 >= 32900)
	add("single Segment messages/s at 64 clients", r.SegmentSingle, "≥ 5,600 (2× RudderStack's 2,787); SPEC §7: ≥ 10,000", r.SegmentSingle >= 10000)
	add("p99 ack of a 1 MB batch at half the max rate (ms)", r.HalfRateP99, "≤ 250", r.HalfRateP99 > 0 && r.HalfRateP99 <= 250)
	add("peak RSS (MiB)", r.PeakRSSMiB, "≤ 512", r.PeakRSSMiB > 0 && r.PeakRSSMiB <= 512)
	// Against the sustained rate: acknowledging into the inbox faster than it is processed is
	// not throughput the system can carry.
	add("SparkPost sustained ingest events/s vs RudderStack's 35,000 ×2", r.SustainedIngest/70000, "≥ 1", r.SustainedIngest >= 70000)
	return out
}

func print(r *Report) {
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nSwitchboard benchmark — %s, %d CPUs, %s per phase\n\n", r.GoVersion, r.CPUs, time.Duration(r.Phase*float64(time.Second)))
	fmt.Fprintln(w, "measure\tvalue\t")
	row := func(k string, v float64, unit string) { fmt.Fprintf(w, "%s\t%s %s\t\n", k, num(v), unit) }
	row("store insert ceiling", r.StoreCeiling, "events/s")
	row("SparkPost ingest (ack after commit)", r.Ingest, "events/s")
	row("  ack p50 / p99 at max", r.IngestP50, fmt.Sprintf("ms / %s ms", num(r.IngestP99)))
	row("  ack p50 / p99 at half rate", r.HalfRateP50, fmt.Sprintf("ms / %s ms", num(r.HalfRateP99)))
	for _, s := range r.Sweep {
		fmt.Fprintf(w, "  open model %s batches/s\tachieved %s, p50 %s ms, p99 %s ms, errors %d\t\n", num(s.TargetBatchesPerS), num(s.AchievedPerS), num(s.P50ms), num(s.P99ms), s.Errors)
	}
	row("  drained", r.IngestDrainS, fmt.Sprintf("s after the phase, %s µs CPU/event", num(r.IngestCPUus)))
	row(fmt.Sprintf("SparkPost sustained (%s s, default inbox bound)", num(r.SustainedPhaseS)), r.SustainedIngest,
		fmt.Sprintf("events/s until drained (acked %s/s in the phase, %d batches refused and sent again, drained %s s after), %s µs CPU/event",
			num(r.SustainedAcked), r.SustainedRefused, num(r.SustainedDrainS), num(r.SustainedCPUus)))
	row("  database writer busy", r.SustainedWriterBusy*100, "% of the phase and drain")
	row("SparkPost 100-event batches, 16 connections", r.Ingest100, fmt.Sprintf("events/s, sustained %s, %s µs CPU/event", num(r.Sustained100), num(r.Ingest100CPUus)))
	row("end to end, 8 tenants", r.EndToEnd, fmt.Sprintf("events/s (%d events, %d lost), %s µs CPU/event", r.EndToEndSent, r.EndToEndLost, num(r.EndToEndCPUus)))
	row("end to end, one tenant at 50 requests/s", r.EndToEndOne, fmt.Sprintf("events/s (%d events, %d lost), %s µs CPU/event; %.1f requests/s of %s messages, %s KB",
		r.EndToEndOneSent, r.EndToEndOneLost, num(r.EndToEndOneCPUus), r.EndToEndOneReqPerS, num(r.EndToEndOneMsgPerRq), num(r.EndToEndOneKBPerRq)))
	row("single Segment messages (64 clients)", r.SegmentSingle, fmt.Sprintf("messages/s, p99 %s ms, %s µs CPU/message", num(r.SegmentP99), num(r.SegmentSingleCPUus)))
	row("Segment arrays of 100, 8 / 16 clients", r.SegmentArrays8, fmt.Sprintf("/ %s messages/s, %s µs CPU/message", num(r.SegmentArrays16), num(r.SegmentArraysCPUus)))
	row("peak RSS", r.PeakRSSMiB, "MiB")
	row("WAL at end", r.WALMiB, "MiB")
	fmt.Fprintln(w, "\nSPEC §7 target\tmeasured\tgoal\tmet")
	for _, x := range r.Ratios {
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", x.Name, num(x.Value), x.Goal, x.Met)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nFAILED %s\n", e)
	}
	w.Flush()
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	default:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	}
}
