package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
)

// segmentClients is SPEC §7's concurrency for single-message Segment POSTs.
const segmentClients = 64

// segmentSingles measures direction B's intake: 64 clients each posting one Segment message per
// request (as Segment's classic Webhooks destination does), acknowledged after commit.
func segmentSingles(ctx context.Context, bin, dir string, phase time.Duration, r *Report) error {
	p, op, err := server(bin, dir, "segment")
	if err != nil {
		return err
	}
	defer p.Kill()
	var tenant struct{ ID string }
	if err := postJSON(op, "/api/v1/tenants", `{"name": "bench-segment"}`, 201, &tenant); err != nil {
		return err
	}
	var dst struct {
		ID     string
		APIKey string `json:"api_key"`
	}
	if err := postJSON(op, "/api/v1/tenants/"+tenant.ID+"/destinations", `{"name": "bench"}`, 201, &dst); err != nil {
		return err
	}
	hook := &e2e.Client{Base: op.Base, Token: dst.APIKey, HTTP: httpClient(segmentClients)}
	var seq, acked atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var first error
	var wg sync.WaitGroup
	deadline := time.Now().Add(phase)
	start := time.Now()
	for range segmentClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for time.Now().Before(deadline) {
				n := seq.Add(1)
				var msg []byte
				if n%4 == 0 {
					msg = fmt.Appendf(nil, `{"type":"identify","messageId":"m-%d","userId":"u%d","traits":{"email":"u%d@example.com","name":"User %d"},"timestamp":"2024-05-01T10:00:00Z"}`, n, n%5000, n%5000, n)
				} else {
					msg = fmt.Appendf(nil, `{"type":"track","messageId":"m-%d","userId":"u%d","event":"Order Completed","properties":{"total":42.5,"n":%d},"timestamp":"2024-05-01T10:00:00Z"}`, n, n%5000, n)
				}
				sent := time.Now()
				status, body, err := hook.Do("POST", "/hooks/segment/"+dst.ID, msg)
				if err == nil && status != 200 {
					err = fmt.Errorf("segment hook answered %d: %s", status, body)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(sent))
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	r.SegmentSingle = float64(acked.Load()) / time.Since(start).Seconds()
	r.SegmentP99 = pct(lat, 99)
	r.PeakRSSMiB = max(r.PeakRSSMiB, p.PeakRSSMiB())
	_, err = p.Stop()
	return err
}

func postJSON(c *e2e.Client, path, body string, want int, out any) error {
	status, b, err := c.Do("POST", path, []byte(body))
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("POST %s: %d %s", path, status, b)
	}
	return json.Unmarshal(b, out)
}
