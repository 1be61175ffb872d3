package source_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/source"
	_ "github.com/switchboard-hub/switchboard/internal/source/sparkpost" // the provider of the batches here
	"github.com/switchboard-hub/switchboard/internal/store"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "sb.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newSource creates a tenant and src (its id, name and flags as given) for it.
func newSource(t *testing.T, db *store.DB, src *store.Source) *store.Source {
	t.Helper()
	tn, err := db.CreateTenant(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	src.TenantID, src.Name, src.Auth = tn.ID, "p", "basic"
	if err := db.CreateSource(context.Background(), src, "u", "h"); err != nil {
		t.Fatal(err)
	}
	return src
}

func count(t *testing.T, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Reader().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

const processorBatch = `[
 {"msys":{"message_event":{"type":"delivery","event_id":"e1","timestamp":"1460989507","rcpt_to":"a@example.com","rcpt_meta":{"user_id":"u1"}}}},
 {"msys":{"track_event":{"type":"open","event_id":"e2","timestamp":"1460989508","rcpt_to":"a@example.com"}}},
 {"msys":{"track_event":{"type":"initial_open","event_id":"e3","timestamp":"1460989508","rcpt_to":"a@example.com"}}},
 {"msys":{"message_event":{"type":"delivery","event_id":"e1","timestamp":"1460989507","rcpt_to":"a@example.com"}}},
 "not an event",
 {"msys":{"message_event":{"type":"delivery","event_id":"e5","timestamp":"yesterday","rcpt_to":"b@example.com"}}}
]`

// TestProcessorIsIdempotent processes a batch, then makes the processor see it again — as after
// a crash between any two steps — and checks that nothing is stored or queued twice.
func TestProcessorIsIdempotent(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	src := newSource(t, db, &store.Source{ID: "src_aaaaaaaaaaaaaaaa"})
	if _, err := db.AddBatch(ctx, &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, BatchID: "b1", Body: []byte(processorBatch)}); err != nil {
		t.Fatal(err)
	}
	notified := 0
	p := source.NewProcessor(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Notify = func(string) { notified++ }
	if n, err := p.ProcessOnce(ctx); err != nil || n != 1 {
		t.Fatalf("ProcessOnce = %d, %v", n, err)
	}
	check := func() {
		t.Helper()
		if n := count(t, db, `SELECT COUNT(*) FROM email_events`); n != 5 {
			t.Fatalf("%d events stored; want 5 (e1 once, e2, e3, the odd element, e5)", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM deliveries`); n != 2 {
			t.Fatalf("%d deliveries; want 2 (e1 and e2)", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM email_events WHERE status = 'invalid'`); n != 2 {
			t.Fatalf("%d invalid events; want 2 (the string element and the bad timestamp)", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM email_events WHERE status = 'not_sent' AND type = 'initial_open'`); n != 1 {
			t.Fatal("initial_open should be stored as not_sent")
		}
		// Done again, the batch's own events are not taken for duplicates of themselves.
		if r, err := db.Receipt(ctx, src.TenantID, src.ID, "b1"); err != nil || r.Events != 6 || r.Duplicates != 1 || r.Stored != 5 {
			t.Fatalf("receipt %+v, %v; want 6 events: 1 duplicate (e1), 5 stored", r, err)
		}
	}
	check()
	if notified != 1 {
		t.Fatalf("engine notified %d times", notified)
	}
	// As if the processor died before it could record the batch as done.
	err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE inbox SET processed_at = NULL`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.ProcessOnce(ctx); err != nil || n != 1 {
		t.Fatalf("second ProcessOnce = %d, %v", n, err)
	}
	check()
	if n, _ := p.ProcessOnce(ctx); n != 0 {
		t.Fatalf("a processed batch was processed again (%d)", n)
	}
}

func TestProcessorParksDeliveriesOfPausedSource(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	src := newSource(t, db, &store.Source{ID: "src_bbbbbbbbbbbbbbbb", Paused: true})
	db.AddBatch(ctx, &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, Body: []byte(processorBatch)})
	p := source.NewProcessor(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := p.ProcessOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM deliveries WHERE status = 'paused' AND reason = 'no_write_key'`); n != 2 {
		t.Fatalf("%d paused deliveries (waiting for a key too); want 2", n)
	}
	src.Paused = false
	if err := db.UpdateSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM deliveries WHERE status = 'pending'`); n != 2 {
		t.Fatalf("unpausing left %d pending; want 2", n)
	}
}

// TestProcessorLogsEachBatch checks the one info line per processed batch: who it belongs to and
// what became of its events, duplicates included (SparkPost's own samples reuse one event_id).
func TestProcessorLogsEachBatch(t *testing.T) {
	db := openStore(t)
	ctx := context.Background()
	src := newSource(t, db, &store.Source{ID: "src_cccccccccccccccc"})
	second := `[
 {"msys":{"track_event":{"type":"open","event_id":"e2","timestamp":"1460989508","rcpt_to":"a@example.com"}}},
 {"msys":{"message_event":{"type":"delivery","event_id":"e6","timestamp":"1460989509","rcpt_to":"c@example.com"}}}
]`
	var logs bytes.Buffer
	p := source.NewProcessor(db, slog.New(slog.NewJSONHandler(&logs, nil)))
	for i, body := range []string{processorBatch, second} {
		if _, err := db.AddBatch(ctx, &store.InboxBatch{TenantID: src.TenantID, SourceID: src.ID, BatchID: fmt.Sprintf("b%d", i+1), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		// One batch at a time, so that the second one's e2 is already stored when it is processed.
		if n, err := p.ProcessOnce(ctx); err != nil || n != 1 {
			t.Fatalf("ProcessOnce = %d, %v", n, err)
		}
	}
	type line struct {
		Msg        string   `json:"msg"`
		Level      string   `json:"level"`
		TenantID   string   `json:"tenant_id"`
		SourceID   string   `json:"source_id"`
		BatchID    string   `json:"batch_id"`
		Events     int      `json:"events"`
		New        int      `json:"new"`
		Duplicates int      `json:"duplicates"`
		Queued     int      `json:"queued"`
		MS         *float64 `json:"ms"`
	}
	var got []line
	for _, raw := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("log line is not JSON: %s", raw)
		}
		if l.Msg == "sparkpost batch processed" {
			got = append(got, l)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d batch lines; want one per batch: %s", len(got), logs.String())
	}
	// b1: e1 twice (one duplicate), e2, e3, the odd element, e5; e1 and e2 are sent.
	// b2: e2 again (a duplicate of b1's), e6 new and sent.
	want := []struct {
		batch                     string
		events, new, dups, queued int
	}{{"b1", 6, 5, 1, 2}, {"b2", 2, 1, 1, 1}}
	for i, w := range want {
		g := got[i]
		if g.Level != "INFO" || g.TenantID != src.TenantID || g.SourceID != src.ID || g.BatchID != w.batch || g.Events != w.events || g.New != w.new ||
			g.Duplicates != w.dups || g.Queued != w.queued || g.MS == nil || *g.MS < 0 {
			t.Errorf("line %d: %+v; want batch %s with events %d, new %d, duplicates %d, queued %d and ms", i, g, w.batch, w.events, w.new, w.dups, w.queued)
		}
	}
	if strings.Contains(logs.String(), "a@example.com") {
		t.Error("the batch line carries event data (a recipient)")
	}
}
