package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/server"
)

// BenchmarkSegmentHookSingles is SPEC §7's "single-message Segment POSTs from 64 concurrent
// clients": identify and track calls, one message per request, over loopback HTTP, each
// answered after its commit. "grouped" is the server as it runs; "tx-per-request" serialises the
// hook's writes so that every request commits alone, the baseline group commit is measured
// against. Compare their msgs/s in one run; p99-ms is the ack latency.
func BenchmarkSegmentHookSingles(b *testing.B) {
	for _, mode := range []struct {
		name   string
		serial bool
	}{{"grouped", false}, {"tx-per-request", true}} {
		b.Run(mode.name, func(b *testing.B) {
			app := newBenchApp(b, server.DestinationConfig{OneTransactionPerRequest: mode.serial})
			const clients = 64
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
			var next atomic.Int64
			latencies := make([][]time.Duration, clients)
			per := (b.N + clients - 1) / clients
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						n := next.Add(1)
						body := fmt.Sprintf(`{"type":"identify","messageId":"m%d","userId":"u%d","traits":{"email":"u%d@example.com","plan":"pro"}}`, n, n/2, n/2)
						if n%2 == 1 {
							body = fmt.Sprintf(`{"type":"track","messageId":"m%d","userId":"u%d","event":"Order Completed","properties":{"total":42}}`, n, n/2)
						}
						req, _ := http.NewRequest("POST", app.url, bytes.NewReader([]byte(body)))
						req.Header.Set("Authorization", "Bearer "+app.key)
						req.Header.Set("Content-Type", "application/json")
						start := time.Now()
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
						latencies[c] = append(latencies[c], time.Since(start))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(latencies...)
			slices.Sort(all)
			b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "msgs/s")
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchApp is a server with one destination, for benchmarks (no secret checks on the log).
type benchApp struct {
	url, key string
}

func newBenchApp(b *testing.B, cfg server.DestinationConfig) *benchApp {
	app, _ := startDestServer(b, cfg, io.Discard)
	tn := app.Tenant("bench")
	tok := app.TenantToken(tn)
	status, body, _ := app.Do("POST", "/api/v1/tenants/"+tn.ID+"/destinations", tok, `{"name": "bench"}`)
	if status != 201 {
		b.Fatalf("%d %s", status, body)
	}
	var d createdDestination
	if err := json.Unmarshal(body, &d); err != nil {
		b.Fatal(err)
	}
	return &benchApp{url: app.HTTP.URL + "/hooks/segment/" + d.ID, key: d.APIKey}
}
