package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
)

// workflowReceiver counts the distinct Idempotency-Keys of the workflow calls it gets.
type workflowReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	keys map[string]int
}

func newWorkflowReceiver() *workflowReceiver {
	w := &workflowReceiver{keys: map[string]int{}}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.keys[r.Header.Get("Idempotency-Key")]++
		w.mu.Unlock()
	}))
	return w
}

// settle polls count until it reaches zero or 90 s pass, and returns its last value. It waits
// for background delivery; it never asserts how fast that is.
func settle(count func() int) int {
	n := count()
	for deadline := time.Now().Add(90 * time.Second); n > 0 && time.Now().Before(deadline); n = count() {
		time.Sleep(200 * time.Millisecond)
	}
	return n
}

// TestCrashUnderMixedLoad drives SparkPost batches and Segment messages at the server at once,
// kills it with SIGKILL at random moments, restarts it on the same data, and then checks that
// nothing acknowledged was lost: every acknowledged SparkPost event reached Segment, every
// acknowledged Segment track was applied once and fired its workflow.
// `make test` runs a few rounds; `make test-crash` sets SWITCHBOARD_CRASH_ROUNDS higher.
func TestCrashUnderMixedLoad(t *testing.T) {
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("SWITCHBOARD_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	fake := fakesegment.New()
	fake.Lean = true
	defer fake.Close()
	rcv := newWorkflowReceiver()
	defer rcv.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	op := &e2e.Client{Base: p.URL(), Token: p.operatorToken(t)}

	sp, err := e2e.NewSparkPostTenant(op, "crash", fake.URL, "wk_crash", 0)
	if err != nil {
		t.Fatal(err)
	}
	admin := sp.Admin
	var dst struct {
		ID     string
		APIKey string `json:"api_key"`
	}
	if status, body, err := admin.Do("POST", "/api/v1/tenants/"+sp.ID+"/destinations", []byte(`{"name": "crash", "hold_for": "1s"}`)); err != nil || status != 201 {
		t.Fatalf("destination: %d %s %v", status, body, err)
	} else {
		json.Unmarshal(body, &dst)
	}
	wf := fmt.Sprintf(`{"name": "orders", "event": "Order Completed", "url": %q}`, rcv.URL)
	if status, body, err := admin.Do("POST", "/api/v1/tenants/"+sp.ID+"/workflows", []byte(wf)); err != nil || status != 201 {
		t.Fatalf("workflow: %d %s %v", status, body, err)
	}

	var (
		spAcked    atomic.Int64 // SparkPost events acknowledged
		trackAcked atomic.Int64 // Segment tracks acknowledged (each fires the workflow once)
		seq        atomic.Int64
		mu         sync.Mutex
		ackedIDs   []string // Segment messageIds of every acknowledged SparkPost event
		ackedTrack []string // messageIds of every acknowledged track
	)
	load := func(p *proc, stop <-chan struct{}) {
		var wg sync.WaitGroup
		hook := &e2e.Client{Base: p.URL(), Token: dst.APIKey}
		target := sp.At(p.URL()) // each restart listens on a new port
		for range 2 {
			wg.Add(1)
			go func() { // SparkPost
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := seq.Add(1)
					status, _, err := target.Post(e2e.DeliveryBatch(fmt.Sprintf("crash-%d", n), 100, 300), fmt.Sprintf("crash-%d", n))
					if err == nil && status == 200 {
						spAcked.Add(100)
						mu.Lock()
						for i := range 100 {
							ackedIDs = append(ackedIDs, sparkpost.MessageID(sp.ID, fmt.Sprintf("crash-%d-%d", n, i)))
						}
						mu.Unlock()
					}
				}
			}()
		}
		for range 4 {
			wg.Add(1)
			go func() { // Segment: an identify, then a track for the same user
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := seq.Add(1)
					user := fmt.Sprintf("user-%d", n%50)
					id := fmt.Sprintf(`{"type":"identify","messageId":"id-%d","userId":%q,"traits":{"email":"%s@example.com"}}`, n, user, user)
					tr := fmt.Sprintf(`{"type":"track","messageId":"tr-%d","userId":%q,"event":"Order Completed","properties":{"n":%d}}`, n, user, n)
					if status, _, err := hook.Do("POST", "/hooks/segment/"+dst.ID, []byte("["+id+","+tr+"]")); err == nil && status == 200 {
						trackAcked.Add(1)
						mu.Lock()
						ackedTrack = append(ackedTrack, fmt.Sprintf("tr-%d", n))
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}

	for round := range rounds {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { load(p, stop); close(done) }()
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		p.Kill() // SIGKILL, in the middle of requests, commits and sends
		close(stop)
		<-done
		t.Logf("round %d: killed after %d SparkPost events and %d tracks acknowledged so far", round+1, spAcked.Load(), trackAcked.Load())
		p = startServe(t, dataDir)
	}

	// Every acknowledged event arrives (a batch committed just before the kill, whose answer
	// never left, may arrive too: it was stored, so it is sent).
	missing := func() int {
		got := fake.Unique(sp.WriteKey)
		n := 0
		for _, id := range ackedIDs {
			if _, ok := got[id]; !ok {
				n++
			}
		}
		return n
	}
	if n := settle(missing); n > 0 {
		t.Fatalf("%d of %d acknowledged SparkPost events never reached Segment", n, len(ackedIDs))
	}
	unfired := func() int {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		n := 0
		for _, id := range ackedTrack {
			if rcv.keys[id] == 0 {
				n++
			}
		}
		return n
	}
	if n := settle(unfired); n > 0 {
		t.Fatalf("%d of %d acknowledged tracks never fired their workflow", n, len(ackedTrack))
	}
	// Applied once: every acknowledged track is an event, and no message is an event twice.
	admin = sp.At(p.URL()).Admin
	events, seen := 0, map[string]bool{}
	for u := range 50 {
		next := fmt.Sprintf("/api/v1/tenants/%s/users/user-%d/events?limit=1000", sp.ID, u)
		for next != "" {
			_, body, err := admin.Do("GET", next, nil)
			if err != nil {
				t.Fatal(err)
			}
			var page struct {
				Results []struct {
					MessageID string `json:"message_id"`
				}
				Links struct{ Next string }
			}
			json.Unmarshal(body, &page)
			for _, e := range page.Results {
				if seen[e.MessageID] {
					t.Fatalf("message %s was applied twice", e.MessageID)
				}
				seen[e.MessageID] = true
				events++
			}
			next = page.Links.Next
		}
	}
	if events < int(trackAcked.Load()) {
		t.Fatalf("%d events stored for %d acknowledged tracks", events, trackAcked.Load())
	}
	t.Logf("%d rounds: %d SparkPost events and %d tracks acknowledged, all delivered; %d events stored", rounds, spAcked.Load(), trackAcked.Load(), events)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
