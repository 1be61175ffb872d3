package delivery

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestGateKeepsTheTenantUnderItsRate sends requests from many goroutines through one tenant's
// gate and checks the receiver never saw more than the tenant's requests per second.
func TestGateKeepsTheTenantUnderItsRate(t *testing.T) {
	var mu sync.Mutex
	var seen []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	const rps = 20
	g := &gate{base: http.DefaultTransport, limiter: rate.NewLimiter(rps, 1), cooldown: time.Second}
	var wg sync.WaitGroup
	for range 3 * rps / 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/v1/batch", nil)
			resp, err := g.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	// In any window of one second the receiver saw at most rps requests (+1 for the window edges).
	for i := range seen {
		n := 0
		for _, s := range seen[i:] {
			if s.Sub(seen[i]) < time.Second {
				n++
			}
		}
		if n > rps+1 {
			t.Fatalf("%d requests within one second; the limit is %d/s", n, rps)
		}
	}
}

func TestGateCoolsDownAfterRetryAfter(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	g := &gate{base: http.DefaultTransport, limiter: rate.NewLimiter(rate.Inf, 1), cooldown: 100 * time.Millisecond}
	req, _ := http.NewRequest("POST", srv.URL, nil)
	resp, err := g.RoundTrip(req)
	if err != nil || resp.StatusCode != 429 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := g.RoundTrip(req); err != errCoolingDown {
		t.Fatalf("request during Retry-After: %v; want it refused without a call", err)
	}
	if calls != 1 {
		t.Fatalf("receiver called %d times", calls)
	}
	if w := g.wait(); w < 2*time.Second || w > 3*time.Second {
		t.Fatalf("cooling down for %s; want about 3 s", w)
	}
	for _, v := range []struct {
		in   string
		want time.Duration
	}{{"", 0}, {"7", 7 * time.Second}, {"-1", 0}, {"soon", 0}} {
		if got := retryAfter(v.in); got != v.want {
			t.Errorf("retryAfter(%q) = %s, want %s", v.in, got, v.want)
		}
	}
	if got := retryAfter(time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)); got < 8*time.Second || got > 10*time.Second {
		t.Errorf("retryAfter(HTTP date 10 s ahead) = %s", got)
	}
}
