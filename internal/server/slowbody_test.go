package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/server"
)

// newHookLimitsApp is NewTestApp with the hook-body limits of limits (its HookMemory,
// HookMemoryPerTenant, HookBodyTimeout and HookBodyRate; zero fields take the defaults).
func newHookLimitsApp(tb testing.TB, limits server.Config) *TestApp {
	tb.Helper()
	return NewTestApp(tb, func(c *server.Config) {
		c.HookMemory, c.HookMemoryPerTenant = limits.HookMemory, limits.HookMemoryPerTenant
		c.HookBodyTimeout, c.HookBodyRate = limits.HookBodyTimeout, limits.HookBodyRate
	})
}

// hookTenant is a tenant with one SparkPost source and one Segment destination, and the
// Authorization header each hook takes.
type hookTenant struct {
	Source, Destination         string // hook paths
	SourceAuth, DestinationAuth string
}

func newHookTenant(t *testing.T, app *TestApp, name string) hookTenant {
	t.Helper()
	tn := app.Tenant(name)
	token := app.TenantToken(tn)
	src := app.createSource(token, tn.ID, `{"name": "prod"}`)
	status, body, _ := app.Do("POST", "/api/v1/tenants/"+tn.ID+"/destinations", token, `{"name": "Segment"}`)
	var d createdDestination
	if status != 201 || json.Unmarshal(body, &d) != nil || d.APIKey == "" {
		t.Fatalf("create destination: %d %s", status, body)
	}
	app.Secret(d.APIKey)
	app.Secret(d.SharedSecret)
	return hookTenant{
		Source: "/hooks/sparkpost/" + src.ID, SourceAuth: basicAuth(src.Credentials.Username, src.Credentials.Password),
		Destination: "/hooks/segment/" + d.ID, DestinationAuth: "Bearer " + d.APIKey,
	}
}

// hookReserved reads the hook body bytes reserved now from /metrics.
func hookReserved(t *testing.T, app *TestApp) int64 {
	t.Helper()
	status, body, _ := app.Do("GET", "/metrics", "", nil)
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "switchboard_hook_body_bytes_reserved "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int64(n)
		}
	}
	t.Fatal("/metrics has no switchboard_hook_body_bytes_reserved")
	return 0
}

// rawHook is one hook request on a connection of its own, written by hand: its headers declare
// a body length, and the body comes only as fast as the test writes it.
type rawHook struct {
	conn    net.Conn
	start   time.Time
	answers chan rawAnswer
	got     *rawAnswer // the answer, once received
}

// rawAnswer is what came back on a rawHook's connection.
type rawAnswer struct {
	Status     int // 0: the connection ended without an answer
	RetryAfter string
	Close      bool // the server said it closes the connection
	Body       string
	After      time.Duration // since the request was sent
}

// openRawHook sends the headers of POST path declaring a body of declared bytes, then first.
func openRawHook(t *testing.T, app *TestApp, path, authorization string, declared int, first string) *rawHook {
	t.Helper()
	conn, err := net.Dial("tcp", app.HTTP.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &rawHook{conn: conn, start: time.Now(), answers: make(chan rawAnswer, 1)}
	head := "POST " + path + " HTTP/1.1\r\nHost: switchboard.test\r\nContent-Type: application/json\r\n"
	if authorization != "" {
		head += "Authorization: " + authorization + "\r\n"
	}
	head += "Content-Length: " + strconv.Itoa(declared) + "\r\n\r\n" + first
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			h.answers <- rawAnswer{After: time.Since(h.start)}
			return
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		h.answers <- rawAnswer{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Close: resp.Close,
			Body: string(b), After: time.Since(h.start)}
	}()
	return h
}

// trickle writes one byte of body every interval until the connection fails or stop closes,
// as an upload that keeps the connection busy without ever finishing.
func (h *rawHook) trickle(stop <-chan struct{}, every time.Duration) {
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := h.conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
}

// answered reports, without waiting, whether the answer has come.
func (h *rawHook) answered() bool {
	if h.got != nil {
		return true
	}
	select {
	case a := <-h.answers:
		h.got = &a
		return true
	default:
		return false
	}
}

// wait returns the answer, failing the test if none comes within a generous deadline.
func (h *rawHook) wait(t *testing.T, what string) rawAnswer {
	t.Helper()
	if h.got == nil {
		select {
		case a := <-h.answers:
			h.got = &a
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: no answer after 60 s", what)
		}
	}
	return *h.got
}

// timedPost posts body to path and returns the status and how long the answer took.
func timedPost(t *testing.T, app *TestApp, path, authorization, body string) (int, []byte, time.Duration) {
	t.Helper()
	start := time.Now()
	status, resp, _ := app.Do("POST", path, "", body, "Authorization", authorization)
	return status, resp, time.Since(start)
}

// TestSlowBodyTenantIsolation: tenant A opens 20 authenticated hook requests declaring 16 MiB
// bodies and trickles them, as in the 2026-12-02 review. A holds no more than its share of the
// 256 MiB budget (64 MiB: four bodies) and its other requests are told to come back (503 +
// Retry-After), while tenant B's SparkPost and Segment hooks still answer 200, a full-size
// batch included.
func TestSlowBodyTenantIsolation(t *testing.T) {
	app := newHookLimitsApp(t, server.Config{HookMemory: 256 << 20, HookBodyTimeout: 10 * time.Minute})
	a, b := newHookTenant(t, app, "A"), newHookTenant(t, app, "B")

	stop := make(chan struct{})
	defer close(stop)
	var hooks []*rawHook
	for i := range 20 {
		path, authz := a.Source, a.SourceAuth
		if i%2 == 1 {
			path, authz = a.Destination, a.DestinationAuth
		}
		h := openRawHook(t, app, path, authz, 16<<20, "[")
		h.trickle(stop, 50*time.Millisecond)
		hooks = append(hooks, h)
	}
	const share, held = 64 << 20, 4
	waitFor(t, "A's requests past its share to be refused and its share to be taken", func() bool {
		refused := 0
		for _, h := range hooks {
			if h.answered() {
				refused++
			}
		}
		return refused == len(hooks)-held && hookReserved(t, app) == share
	})
	var holding []*rawHook
	for i, h := range hooks {
		if !h.answered() {
			holding = append(holding, h)
			continue
		}
		if got := h.wait(t, "A"); got.Status != http.StatusServiceUnavailable || got.RetryAfter == "" {
			t.Fatalf("A's request %d past its share: %d, Retry-After %q: %s", i, got.Status, got.RetryAfter, got.Body)
		}
	}

	// B's hooks, while A holds its share and keeps trickling.
	var latencies []time.Duration
	for i := range 5 {
		batch := fmt.Sprintf(`[{"msys":{"message_event":{"type":"delivery","event_id":"b-%d","timestamp":"1700000000","rcpt_to":"b@example.com"}}}]`, i)
		status, resp, d := timedPost(t, app, b.Source, b.SourceAuth, batch)
		if status != 200 {
			t.Fatalf("B's SparkPost hook while A trickles: %d %s", status, resp)
		}
		latencies = append(latencies, d)
		msg := fmt.Sprintf(`{"type":"track","event":"Signed Up","userId":"u%d","messageId":"m-%d"}`, i, i)
		status, resp, d = timedPost(t, app, b.Destination, b.DestinationAuth, msg)
		if status != 200 {
			t.Fatalf("B's Segment hook while A trickles: %d %s", status, resp)
		}
		latencies = append(latencies, d)
	}
	event := `{"msys":{"message_event":{"type":"delivery","event_id":"b-big","timestamp":"1700000000","rcpt_to":"b@example.com"}}}`
	big := "[" + event + strings.Repeat(" ", 16<<20-len(event)-2) + "]"
	status, resp, d := timedPost(t, app, b.Source, b.SourceAuth, big)
	if status != 200 {
		t.Fatalf("B's full-size SparkPost batch while A trickles: %d %s", status, resp)
	}
	t.Logf("B while A holds its %d MiB share with %d trickled uploads (and %d refused): hook latencies %v; full-size 16 MiB batch %v",
		share>>20, held, len(hooks)-held, latencies, d)
	for _, h := range holding {
		if h.answered() {
			t.Fatalf("one of A's trickled uploads was answered while B posted: %+v", *h.got)
		}
	}

	// A's uploads going away gives their room back.
	for _, h := range holding {
		h.conn.Close()
	}
	waitFor(t, "A's room to be given back", func() bool { return hookReserved(t, app) == 0 })
}

// TestSlowBodyIsCutOff: a trickled body is answered 408 once its deadline (HookBodyTimeout plus
// its size at HookBodyRate) has passed, however steadily it trickles, and the room it held is
// given back: the same tenant's next requests find room in a budget the two uploads had filled.
func TestSlowBodyIsCutOff(t *testing.T) {
	const floor = time.Second
	app := newHookLimitsApp(t, server.Config{HookMemory: 16 << 20, HookBodyTimeout: floor, HookBodyRate: 64 << 20})
	a := newHookTenant(t, app, "A")

	stop := make(chan struct{})
	defer close(stop)
	slow := map[string]*rawHook{
		"SparkPost": openRawHook(t, app, a.Source, a.SourceAuth, 8<<20, "["),
		"Segment":   openRawHook(t, app, a.Destination, a.DestinationAuth, 8<<20, "["),
	}
	for _, h := range slow {
		h.trickle(stop, 20*time.Millisecond)
	}
	for name, h := range slow {
		got := h.wait(t, name+" trickled upload")
		if got.Status != http.StatusRequestTimeout || !strings.Contains(got.Body, `"request_timeout"`) || !got.Close {
			t.Fatalf("%s trickled upload: %d (closes: %v) %s, want 408 request_timeout and the connection closed", name, got.Status, got.Close, got.Body)
		}
		if got.After < floor {
			t.Fatalf("%s trickled upload cut off after %v, before its deadline of at least %v", name, got.After, floor)
		}
		t.Logf("%s: 8 MiB declared, trickled; cut off with 408 after %v (deadline %v + 8 MiB at 64 MiB/s)", name, got.After, floor)
	}

	waitFor(t, "the cut-off uploads' room to be given back", func() bool { return hookReserved(t, app) == 0 })
	if status, resp, d := timedPost(t, app, a.Source, a.SourceAuth, `[{"msys":{"message_event":{"type":"delivery","event_id":"a-1","timestamp":"1700000000","rcpt_to":"a@example.com"}}}]`); status != 200 {
		t.Fatalf("A's next SparkPost batch: %d %s", status, resp)
	} else {
		t.Logf("A's next SparkPost batch: 200 after %v", d)
	}
	if status, resp, d := timedPost(t, app, a.Destination, a.DestinationAuth, `{"type":"track","event":"Signed Up","userId":"u1","messageId":"m-1"}`); status != 200 {
		t.Fatalf("A's next Segment message: %d %s", status, resp)
	} else {
		t.Logf("A's next Segment message: 200 after %v", d)
	}
}

// TestUnauthenticatedHookReservesNothing: with the whole budget taken by one tenant's upload,
// callers without valid credentials declaring 16 MiB bodies are answered 401 (404 for an unknown
// source) at once, not 503 after waiting for room, and the reserved bytes stay those of the
// one upload: room is reserved only after authentication.
func TestUnauthenticatedHookReservesNothing(t *testing.T) {
	app := newHookLimitsApp(t, server.Config{HookMemory: 16 << 20, HookBodyTimeout: 10 * time.Minute})
	a, b := newHookTenant(t, app, "A"), newHookTenant(t, app, "B")

	stop := make(chan struct{})
	defer close(stop)
	upload := openRawHook(t, app, a.Source, a.SourceAuth, 16<<20, "[")
	upload.trickle(stop, 50*time.Millisecond)
	waitFor(t, "A's upload to take the whole budget", func() bool { return hookReserved(t, app) == 16<<20 })

	type probe struct {
		name, path, authorization string
		want                      []int
	}
	// Every wrong credential counts towards the per-address throttle, which may answer 429
	// instead: that reserves nothing either.
	probes := []probe{
		{"SparkPost, wrong password", b.Source, basicAuth("nobody", "wrong"), []int{401, 429}},
		{"SparkPost, no credentials", b.Source, "", []int{401, 429}},
		{"SparkPost, A's credentials on B's source", b.Source, a.SourceAuth, []int{401, 429}},
		{"Segment, wrong API key", b.Destination, "Bearer wrong-key", []int{401, 429}},
		{"Segment, no credentials", b.Destination, "", []int{401, 429}},
		{"SparkPost, unknown source", "/hooks/sparkpost/src_aaaaaaaaaaaaaaaa", basicAuth("nobody", "wrong"), []int{404}},
	}
	var hooks []*rawHook
	for _, p := range probes {
		for range 2 {
			hooks = append(hooks, openRawHook(t, app, p.path, p.authorization, 16<<20, "["))
		}
	}
	for i, h := range hooks {
		p := probes[i/2]
		got := h.wait(t, p.name)
		if !slices.Contains(p.want, got.Status) {
			t.Errorf("%s, declaring 16 MiB while the budget is taken: %d %s, want one of %v", p.name, got.Status, got.Body, p.want)
		}
		t.Logf("%s: %d after %v", p.name, got.Status, got.After)
	}
	if n := hookReserved(t, app); n != 16<<20 {
		t.Fatalf("reserved after the unauthenticated requests: %d bytes, want only the upload's %d", n, 16<<20)
	}
	if upload.answered() {
		t.Fatalf("the authenticated upload was answered: %+v", *upload.got)
	}
}
