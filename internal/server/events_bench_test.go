package server_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkEmailEvents1M stores 1,000,000 events (10 days, 50 campaigns, 100,000 recipients)
// and measures, through the HTTP API, a recipient search, a campaign + type + day search and
// the first page (1,000 events) of an unfiltered search, each with its total_count, and the
// CSV export of everything (MB/s). SPEC's goal for the three searches is 50 ms each.
func BenchmarkEmailEvents1M(b *testing.B) {
	if testing.Short() {
		b.Skip("stores 1,000,000 events")
	}
	app := NewTestApp(b)
	tn := app.Tenant("bench")
	token := app.TenantToken(tn)
	const n = 1_000_000
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	began := time.Now()
	insertEvents(b, app.DB, tn.ID, n, start, 10*24*time.Hour/n)
	stored := time.Since(began)
	for {
		covered, err := app.DB.RollupEventCounts(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if covered == 0 {
			break
		}
	}
	b.Logf("stored %d events in %s (%.0f events/s), hourly counts rolled up in %s", n, stored.Round(time.Millisecond),
		n/stored.Seconds(), (time.Since(began) - stored).Round(time.Millisecond))

	base := "/api/v1/tenants/" + tn.ID + "/email-events"
	get := func(b *testing.B, path string) int64 {
		req, _ := http.NewRequest("GET", app.HTTP.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := app.HTTP.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return n
	}
	search := func(name, query string, min int) {
		b.Run(name, func(b *testing.B) {
			p := app.events(token, base+query) // checked once, outside the timing
			if p.TotalCount < min || len(p.Results) == 0 {
				b.Fatalf("%s: %d results of %d", query, len(p.Results), p.TotalCount)
			}
			for b.Loop() {
				get(b, base+query)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/search")
			b.ReportMetric(float64(p.TotalCount), "matches")
			b.ReportMetric(float64(len(p.Results)), "results")
		})
	}
	search("recipient", "?recipients=user4242@example.com", 10)
	search("campaign_type_day", "?campaigns=campaign-7&events=click&from=2024-05-04&to=2024-05-05", 100)
	search("first_page_unfiltered", "", n)

	b.Run("csv", func(b *testing.B) {
		var size int64
		for b.Loop() {
			size = get(b, base+".csv")
		}
		b.SetBytes(size)
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
