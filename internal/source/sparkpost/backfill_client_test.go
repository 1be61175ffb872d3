package sparkpost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// statusServer answers each request with the next status of its list (200: an empty page).
func statusServer(t *testing.T, statuses ...int) (base *url.URL, served func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		code := http.StatusOK
		if n < len(statuses) {
			code = statuses[n]
		}
		n++
		w.WriteHeader(code)
		if code == http.StatusOK {
			fmt.Fprint(w, `{"results": [], "total_count": 0, "links": {}}`)
		}
	}))
	t.Cleanup(srv.Close)
	base, _ = url.Parse(srv.URL)
	return base, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestGetReportsEveryFailedAttempt: the job hears of each failure as it happens, and whether
// another attempt follows, so that its progress shows retries while they happen.
func TestGetReportsEveryFailedAttempt(t *testing.T) {
	type call struct {
		err      string
		retrying bool
	}
	for _, tc := range []struct {
		name        string
		statuses    []int
		maxAttempts int
		want        []call
		wantErr     string
		requests    int
	}{
		{"recovers", []int{503, 429}, 10, []call{{"SparkPost answered 503", true}, {"SparkPost answered 429", true}}, "", 3},
		{"refused", []int{502, 401}, 10, []call{{"SparkPost answered 502", true}, {"SparkPost answered 401 Unauthorized (the API key needs the Events Search: Read-only permission)", false}}, "401", 2},
		{"gives up", []int{503, 500, 503}, 3, []call{{"SparkPost answered 503", true}, {"SparkPost answered 500", true}, {"SparkPost answered 503", false}}, "gave up after 3 attempts: SparkPost answered 503", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, served := statusServer(t, tc.statuses...)
			var got []call
			c := &client{http: http.DefaultClient, base: base, key: "k", maxAttempts: tc.maxAttempts,
				backoff: func(int, time.Duration) time.Duration { return time.Millisecond },
				failed: func(err error, retrying bool) error {
					got = append(got, call{err.Error(), retrying})
					return nil
				}}
			_, err := c.get(context.Background(), c.firstPage(time.Now().Add(-time.Hour), time.Now(), 10))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("failures reported:\n  %v\nwant\n  %v", got, tc.want)
			}
			if served() != tc.requests {
				t.Fatalf("%d requests, want %d", served(), tc.requests)
			}
		})
	}

	// A failure to record the progress ends the job instead of retrying blind.
	base, served := statusServer(t, 503, 503)
	stop := errors.New("database gone")
	c := &client{http: http.DefaultClient, base: base, key: "k", maxAttempts: 10,
		backoff: func(int, time.Duration) time.Duration { return time.Millisecond },
		failed:  func(error, bool) error { return stop }}
	if _, err := c.get(context.Background(), c.firstPage(time.Now().Add(-time.Hour), time.Now(), 10)); !errors.Is(err, stop) || served() != 1 {
		t.Fatalf("error %v after %d requests; want the recording error after 1", err, served())
	}
}
