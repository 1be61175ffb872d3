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

// segmentResult is what one Segment-hook phase measured.
type segmentResult struct {
	Rate  float64 // messages acknowledged per second
	P99   float64 // ack latency, ms
	CPUus float64 // server CPU per message
	RSS   float64
}

// segmentLoad measures direction B's intake: clients connections each posting perRequest
// Segment messages per request (1: as Segment's classic Webhooks destination does; a JSON array
// of 100: as its Webhooks Actions destination batches), acknowledged after commit.
func segmentLoad(ctx context.Context, bin, dir, name string, phase time.Duration, clients, perRequest int) (segmentResult, error) {
	var res segmentResult
	p, op, err := server(bin, dir, name)
	if err != nil {
		return res, err
	}
	defer p.Kill()
	var tenant struct{ ID string }
	if err := postJSON(op, "/api/v1/tenants", `{"name": "bench-segment"}`, 201, &tenant); err != nil {
		return res, err
	}
	var dst struct {
		ID     string
		APIKey string `json:"api_key"`
	}
	if err := postJSON(op, "/api/v1/tenants/"+tenant.ID+"/destinations", `{"name": "bench"}`, 201, &dst); err != nil {
		return res, err
	}
	hook := &e2e.Client{Base: op.Base, Token: dst.APIKey, HTTP: httpClient(clients)}
	cpu := p.CPUSeconds()
	prof := startProfile(p, name, phase)
	var seq, acked atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var first error
	var wg sync.WaitGroup
	deadline := time.Now().Add(phase)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for time.Now().Before(deadline) {
				var msg []byte
				if perRequest > 1 {
					msg = append(msg, '[')
				}
				for i := range perRequest {
					if i > 0 {
						msg = append(msg, ',')
					}
					msg = appendMessage(msg, seq.Add(1))
				}
				if perRequest > 1 {
					msg = append(msg, ']')
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
				acked.Add(int64(perRequest))
			}
		}()
	}
	wg.Wait()
	// The profile is written before the server stops (a deferred wait cut it short).
	if err := prof(); err != nil {
		return res, err
	}
	if first != nil {
		return res, first
	}
	res.Rate = float64(acked.Load()) / time.Since(start).Seconds()
	res.P99 = pct(lat, 99)
	res.CPUus = perEvent(p.CPUSeconds()-cpu, acked.Load())
	res.RSS = p.PeakRSSMiB()
	_, err = p.Stop()
	return res, err
}

// appendMessage appends Segment message n: every fourth an identify, the others tracks, over
// 5,000 users.
func appendMessage(dst []byte, n int64) []byte {
	if n%4 == 0 {
		return fmt.Appendf(dst, `{"type":"identify","messageId":"m-%d","userId":"u%d","traits":{"email":"u%d@example.com","name":"User %d"},"timestamp":"2024-05-01T10:00:00Z"}`, n, n%5000, n%5000, n)
	}
	return fmt.Appendf(dst, `{"type":"track","messageId":"m-%d","userId":"u%d","event":"Order Completed","properties":{"total":42.5,"n":%d},"timestamp":"2024-05-01T10:00:00Z"}`, n, n%5000, n)
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
