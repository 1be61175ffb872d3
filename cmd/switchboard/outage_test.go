package main

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
)

// TestSegmentOutage runs one tenant's Segment through 503s, then 429s with Retry-After, then
// requests that hang past analytics-go's 10 s client timeout, then recovery, while a second
// tenant with a healthy endpoint keeps sending. Everything acknowledged must arrive, and the
// healthy tenant must not wait on the broken one.
func TestSegmentOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute")
	}
	var mode atomic.Value
	mode.Store("503")
	broken, healthy := fakesegment.New(), fakesegment.New()
	defer broken.Close()
	defer healthy.Close()
	broken.Behave(func(string) fakesegment.Reply {
		switch mode.Load().(string) {
		case "503":
			return fakesegment.Reply{Status: 503}
		case "429":
			return fakesegment.Reply{Status: 429, RetryAfter: "2"}
		case "hang":
			return fakesegment.Reply{Hang: 15 * time.Second}
		}
		return fakesegment.Reply{}
	})
	p := startServe(t, filepath.Join(t.TempDir(), "data"))
	op := &e2e.Client{Base: p.URL(), Token: p.operatorToken(t)}
	a, err := e2e.NewSparkPostTenant(op, "down", broken.URL, "wk_down", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e2e.NewSparkPostTenant(op, "up", healthy.URL, "wk_up", 0)
	if err != nil {
		t.Fatal(err)
	}

	// While the outage runs, both tenants get a batch every half second; the healthy tenant's
	// events are timed from acknowledgement to arrival.
	var mu sync.Mutex
	var worst time.Duration
	acked := map[string]int{}
	post := func(tn *e2e.SparkPostTenant, n int) {
		batch := e2e.DeliveryBatch(fmt.Sprintf("%s-%d", tn.WriteKey, n), 20, 400)
		status, body, err := tn.Post(batch, "")
		if err != nil || status != 200 {
			t.Errorf("post: %d %s %v", status, body, err)
			return
		}
		mu.Lock()
		acked[tn.WriteKey] += 20
		want := acked[tn.WriteKey]
		mu.Unlock()
		if tn != b {
			return
		}
		start := time.Now()
		if !healthy.WaitUnique(b.WriteKey, want, 20*time.Second) {
			t.Errorf("healthy tenant's batch %d never arrived", n)
			return
		}
		mu.Lock()
		worst = max(worst, time.Since(start))
		mu.Unlock()
	}
	phases := []struct {
		mode string
		d    time.Duration
	}{{"503", 4 * time.Second}, {"429", 4 * time.Second}, {"hang", 14 * time.Second}}
	n := 0
	for _, ph := range phases {
		mode.Store(ph.mode)
		for end := time.Now().Add(ph.d); time.Now().Before(end); n++ {
			post(a, n)
			post(b, n)
			time.Sleep(500 * time.Millisecond)
		}
	}
	if len(broken.Unique(a.WriteKey)) != 0 {
		t.Fatalf("the broken endpoint accepted %d messages during the outage", len(broken.Unique(a.WriteKey)))
	}
	mode.Store("ok")
	if !broken.WaitUnique(a.WriteKey, acked[a.WriteKey], 90*time.Second) {
		t.Fatalf("after recovery %d of %d acknowledged events arrived", len(broken.Unique(a.WriteKey)), acked[a.WriteKey])
	}
	if got := len(healthy.Unique(b.WriteKey)); got != acked[b.WriteKey] {
		t.Fatalf("healthy tenant: %d of %d arrived", got, acked[b.WriteKey])
	}
	t.Logf("outage: %d events held and delivered after recovery; healthy tenant's slowest batch took %s", acked[a.WriteKey], worst)
	if worst > 5*time.Second {
		t.Fatalf("the healthy tenant waited %s for a batch during the other tenant's outage", worst)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
