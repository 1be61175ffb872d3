package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/internal/fakesegment"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// runMain runs a verb in-process and returns its exit code, stdout and stderr.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	var stdout bytes.Buffer
	code := Main(context.Background(), args, &stdout, stderr)
	b, _ := os.ReadFile(stderr.Name())
	return code, stdout.String(), string(b)
}

// seedDataDir makes a data directory holding a tenant with three stored events.
func seedDataDir(t *testing.T) (dir, tenantID string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "switchboard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tn, err := db.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	pb := &store.ProcessedBatch{Batch: &store.InboxBatch{TenantID: tn.ID, SourceID: "src_x"}, Target: "segment", MaxAge: time.Hour}
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i, e := range []struct{ id, typ, body string }{
		{"e1", "delivery", `{"type":"delivery","event_id":"e1","rcpt_to":"ada@example.com","subject":"Hello, world"}`},
		{"e2", "open", `{"type":"open","event_id":"e2","rcpt_to":"ada@example.com","user_agent":"Mozilla \"5\""}`},
		{"e3", "bounce", `{"type":"bounce","event_id":"e3","rcpt_to":"bob@example.com","reason":"550 user\nunknown"}`},
	} {
		pb.Events = append(pb.Events, &store.EmailEvent{EventID: e.id, Type: e.typ, Wrapper: "message_event",
			Time: t0.Add(time.Duration(i) * time.Hour), Body: []byte(e.body), Status: store.EventNotSent})
	}
	if err := db.CommitProcessed(ctx, pb); err != nil {
		t.Fatal(err)
	}
	return dir, tn.ID
}

func TestExportFromDataDir(t *testing.T) {
	dir, tid := seedDataDir(t)
	code, out, errs := runMain(t, "export", "--data-dir", dir, "--tenant", tid, "--fields", "event_id,type,rcpt_to,subject,reason,timestamp",
		"--from", "2024-05-01T14:00", "--to", "2024-05-01T16:00", "--timezone", "Europe/Berlin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// 14:00–16:00 in Berlin is 12:00–14:00 UTC: e1 and e2; e3 at 14:00 UTC is past the end.
	want := "event_id,type,rcpt_to,subject,reason,timestamp\n" +
		"e2,open,ada@example.com,,,2024-05-01T15:00:00.000+02:00\n" +
		"e1,delivery,ada@example.com,\"Hello, world\",,2024-05-01T14:00:00.000+02:00\n"
	if out != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", out, want)
	}
	// stderr is not a terminal here: plain lines, ending with a summary.
	if !strings.Contains(errs, "export: 2 events written to stdout") || strings.Contains(errs, "\r") {
		t.Fatalf("stderr: %q", errs)
	}

	// To a file: complete, private, no partial file left beside it.
	file := filepath.Join(t.TempDir(), "events.csv")
	code, out, errs = runMain(t, "export", "--data-dir", dir, "--tenant", tid, "-o", file)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q: %s", code, out, errs)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "timestamp" || rows[1][2] != "e3" || rows[1][10] != "550 user\nunknown" || rows[3][8] != "Hello, world" {
		t.Fatalf("file: %v\n%s", err, b)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v; it holds addresses, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("files beside the export: %v", entries)
	}

	// Mistakes fail before anything is written, saying what is wrong.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--fields", "rcpt_to,recipient"}, `fields: "recipient" is not a field`},
		{[]string{"--events", "deliverd"}, `events: "deliverd"`},
		{[]string{"--from", "yesterday"}, "from:"},
		{[]string{"--timezone", "Mars/Olympus"}, "timezone:"},
	} {
		bad := filepath.Join(t.TempDir(), "bad.csv")
		code, _, errs := runMain(t, append([]string{"export", "--data-dir", dir, "--tenant", tid, "-o", bad}, c.args...)...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d: %s", c.args, code, errs)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Errorf("%v left a file", c.args)
		}
	}
	if code, _, errs := runMain(t, "export", "--data-dir", dir); code != 1 || !strings.Contains(errs, "--tenant is required") {
		t.Errorf("no tenant: %d %s", code, errs)
	}
	if code, _, errs := runMain(t, "export", "--data-dir", dir, "--tenant", "ten_aaaaaaaaaaaaaaaa"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown tenant: %d %s", code, errs)
	}
}

// TestExportFromServer exports from a running server over HTTP and from its data directory at
// the same time: the two files are the same.
func TestExportFromServer(t *testing.T) {
	fake := fakesegment.New()
	defer fake.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	s := setupSparkPost(t, p, p.operatorToken(t), fake, "wk_export_0001")
	batch, err := os.ReadFile("testdata/sparkpost-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := s.post(t, p, batch, "batch-export"); status != 200 {
		t.Fatalf("batch: %d %s", status, body)
	}
	// Both exports must see the same rows, so wait until the system stands still: all 7 events
	// stored and every sendable one delivered (its switchboard.status no longer moves).
	count := func(path string) int {
		_, body := p.do(t, "GET", path, s.Token, "")
		var page struct {
			TotalCount int `json:"total_count"`
		}
		json.Unmarshal(body, &page)
		return page.TotalCount
	}
	want := sendable(t, batch)
	if left := settle(func() int {
		return 7 - count("/api/v1/tenants/"+s.ID+"/email-events") + want - count("/api/v1/tenants/"+s.ID+"/deliveries?target=segment&status=delivered")
	}); left != 0 {
		t.Fatalf("%d events not yet stored or delivered", left)
	}

	t.Setenv("SWITCHBOARD_TOKEN", s.Token)
	remote := filepath.Join(t.TempDir(), "remote.csv")
	code, _, errs := runMain(t, "export", "--url", p.URL(), "--tenant", s.ID, "--fields", "event_id,type,rcpt_to,switchboard.status", "-o", remote)
	if code != 0 || !strings.Contains(errs, "export: 7 events written to "+remote) {
		t.Fatalf("remote export: exit %d: %s", code, errs)
	}
	local := filepath.Join(t.TempDir(), "local.csv")
	code, _, errs = runMain(t, "export", "--data-dir", dataDir, "--tenant", s.ID, "--fields", "event_id,type,rcpt_to,switchboard.status", "-o", local)
	if code != 0 {
		t.Fatalf("local export beside the server: exit %d: %s", code, errs)
	}
	rb, _ := os.ReadFile(remote)
	lb, _ := os.ReadFile(local)
	if !bytes.Equal(rb, lb) || strings.Count(string(rb), "\n") != 8 {
		t.Fatalf("remote:\n%s\nlocal:\n%s", rb, lb)
	}
	// The server's 400 comes back as the command's error.
	code, _, errs = runMain(t, "export", "--url", p.URL(), "--tenant", s.ID, "--to", "2024-13-01")
	if code != 1 || !strings.Contains(errs, "to:") {
		t.Fatalf("bad time: exit %d: %s", code, errs)
	}
	t.Setenv("SWITCHBOARD_TOKEN", "")
	if code, _, errs := runMain(t, "export", "--url", p.URL(), "--tenant", s.ID); code != 1 || !strings.Contains(errs, "SWITCHBOARD_TOKEN") {
		t.Fatalf("no token: exit %d: %s", code, errs)
	}
}

func TestExportProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, tty: true, total: 200_000, start: time.Now().Add(-10 * time.Second)}
	p.update(50_000)
	p.update(60_000) // within 100 ms of the last: not drawn
	p.print(200_000, time.Now(), true)
	out := buf.String()
	if !strings.HasPrefix(out, "\r[#######.......................]  25%  50,000 / 200,000 events  ") ||
		strings.Contains(out, "60,000") || !strings.Contains(out, "\r[##############################] 100%  200,000 / 200,000 events") ||
		!strings.HasSuffix(out, "\n") || !strings.Contains(out, "events/s  0:10") {
		t.Fatalf("terminal progress: %q", out)
	}
	buf.Reset()
	p = &progress{w: &buf, total: 0, start: time.Now().Add(-2 * time.Second)}
	p.update(1234)
	p.done(1234, "out.csv")
	if lines := strings.Split(strings.TrimSpace(buf.String()), "\n"); len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "export: 1,234 events, ") || !strings.HasPrefix(lines[1], "export: 1,234 events written to out.csv in ") {
		t.Fatalf("plain progress: %q", buf.String())
	}

	var rc recordCounter
	for _, chunk := range []string{"a,b\n1,\"x\n", "y\"\n2,\"\"\"\"\n", "3,z\n"} {
		rc.scan([]byte(chunk))
	}
	if rc.records() != 3 {
		t.Fatalf("records %d; want 3 (quoted line breaks are not records)", rc.records())
	}
}

// TestExportHelpListsItsOwnFlags: `export -h` shows the export's flags and where it reads from,
// not the server's.
func TestExportHelpListsItsOwnFlags(t *testing.T) {
	code, out, errs := runMain(t, "export", "-h")
	if code != 0 || out != "" {
		t.Fatalf("export -h: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{"Usage: switchboard export --tenant ID", "-tenant", "-o ", "-url", "-from", "-event-ids", "-fields", "-data-dir", "-database-url"} {
		if !strings.Contains(errs, want) {
			t.Errorf("export -h lacks %q:\n%s", want, errs)
		}
	}
	for _, serverOnly := range []string{"-addr", "-public-url", "-segment-endpoint", "-log-level", "SWITCHBOARD_ADDR"} {
		if strings.Contains(errs, serverOnly) {
			t.Errorf("export -h lists the server's %q:\n%s", serverOnly, errs)
		}
	}
	// The server's flags are still serve's, and export refuses them.
	if code, _, errs := runMain(t, "serve", "-h"); code != 0 || !strings.Contains(errs, "-addr") || !strings.Contains(errs, "-segment-endpoint") {
		t.Fatalf("serve -h: exit %d:\n%s", code, errs)
	}
	if code, _, errs := runMain(t, "export", "--data-dir", t.TempDir(), "--addr", ":9090", "--tenant", "ten_aaaaaaaaaaaaaaaa"); code != 1 || !strings.Contains(errs, "not defined: -addr") {
		t.Fatalf("export --addr: exit %d:\n%s", code, errs)
	}
}
