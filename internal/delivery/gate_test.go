package delivery

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
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
	g := newGate(http.DefaultTransport, rps, time.Second, 10*time.Second)
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

// batchBody is a request body shaped as analytics-go builds it, with its batch id first.
func batchBody(id string) *strings.Reader {
	return strings.NewReader(`{"messageId":"` + id + `","sentAt":"2026-12-02T00:00:00Z","batch":[]}`)
}

func TestGateCoolsDownAfterRetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "slow down")
	}))
	defer srv.Close()
	g := newGate(http.DefaultTransport, rate.Inf, 100*time.Millisecond, 10*time.Second)
	req, _ := http.NewRequest("POST", srv.URL, batchBody("b1"))
	_, err := g.RoundTrip(req)
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Status != 429 || ae.RetryAfter != 3*time.Second || ae.Error() != "429 slow down" {
		t.Fatalf("first request: %v", err)
	}
	req, _ = http.NewRequest("POST", srv.URL, batchBody("b2"))
	if _, err := g.RoundTrip(req); err != errCoolingDown {
		t.Fatalf("request during Retry-After: %v; want it refused without a call", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("receiver called %d times", n)
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

// TestGateMakesOneRequestPerBatch: analytics-go retries a failed batch ten times in its own loop;
// the receiver must see one request, and every retry gets the first answer. A huge error body is
// read only up to the limit, and a redirect is not followed.
func TestGateMakesOneRequestPerBatch(t *testing.T) {
	var calls, gets atomic.Int32
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Path {
		case "/huge":
			w.WriteHeader(http.StatusUnauthorized)
			chunk := []byte(strings.Repeat("x", 64<<10))
			for range 1024 { // 64 MiB, unless the reader stops early
				n, err := w.Write(chunk)
				served.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "/moved":
			if r.Method == http.MethodGet {
				gets.Add(1)
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	g := newGate(http.DefaultTransport, rate.Inf, time.Millisecond, 10*time.Second)
	var first error
	for i := range 10 {
		req, _ := http.NewRequest("POST", srv.URL+"/huge", batchBody("same-batch"))
		_, err := g.RoundTrip(req)
		if i == 0 {
			first = err
		} else if err != first {
			t.Fatalf("retry %d got %v, want the first answer %v", i, err, first)
		}
	}
	var ae *AnswerError
	if !errors.As(first, &ae) || ae.Status != 401 || len(ae.Body) != 200 || !strings.HasPrefix(ae.Error(), "401 xxx") {
		t.Fatalf("answer: %v", first)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("receiver saw %d requests for one batch", n)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/moved", batchBody("other-batch"))
	_, err := g.RoundTrip(req)
	if !errors.As(err, &ae) || ae.Status != 302 || !strings.Contains(ae.Error(), "/elsewhere not followed") || gets.Load() != 0 {
		t.Fatalf("redirect: %v, %d GETs", err, gets.Load())
	}
	if s := served.Load(); s > 16<<20 {
		t.Fatalf("the gate read %d bytes of an error answer", s)
	}
}

// TestAnalyticsLogNeverSaysDropped: analytics-go's "messages dropped" lines are not logged at
// any level, since Switchboard retries those messages from the database.
func TestAnalyticsLogNeverSaysDropped(t *testing.T) {
	var buf strings.Builder
	l := analyticsLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), tenantID: "ten_x"}
	l.Errorf("%d messages dropped because they failed to be sent after %d attempts", 2, 10)
	l.Errorf("%d messages dropped because they failed to be sent and the client was closed", 2)
	l.Errorf("sending request - %s", "boom")
	if strings.Contains(buf.String(), "dropped") || !strings.Contains(buf.String(), "sending request - boom") {
		t.Fatalf("log: %s", buf.String())
	}
}
