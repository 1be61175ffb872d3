package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source/sparkpost"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// exportFilters are the export flags that become email-events.csv query parameters, by flag name.
var exportFilters = []struct{ flag, param, help string }{
	{"from", "from", "events at or after this time: ISO-8601 (2024-05-01T00:00:00Z), or local (2024-05-01T00:00) in --timezone"},
	{"to", "to", "events before this time (same forms as --from)"},
	{"timezone", "timezone", "IANA time zone for local --from/--to and for the times in the file (default UTC)"},
	{"events", "events", "comma-separated SparkPost event types (delivery,bounce,…)"},
	{"recipients", "recipients", "comma-separated rcpt_to addresses"},
	{"campaigns", "campaigns", "comma-separated campaign ids (* wildcard)"},
	{"templates", "templates", "comma-separated template ids (* wildcard)"},
	{"transmissions", "transmissions", "comma-separated transmission ids"},
	{"messages", "messages", "comma-separated message ids"},
	{"subaccounts", "subaccounts", "comma-separated subaccount ids"},
	{"bounce-classes", "bounce_classes", "comma-separated bounce classification codes"},
	{"event-ids", "event_ids", "comma-separated event ids"},
	{"fields", "fields", "comma-separated columns, in order (default: " + strings.Join(sparkpost.DefaultCSVFields, ",") + ")"},
}

// export writes a tenant's stored SparkPost events as CSV: from the data directory, or from a
// running server with --url (token in SWITCHBOARD_TOKEN). Progress goes to stderr: a bar when it
// is a terminal, a line every few seconds otherwise.
func export(ctx context.Context, args []string, stdout io.Writer, stderr *os.File) error {
	var tenantID, output, serverURL string
	values := make([]string, len(exportFilters))
	cfg, err := parseFlags("export", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&tenantID, "tenant", "", "tenant id (required)")
		fs.StringVar(&output, "o", "-", "output file (- for stdout)")
		fs.StringVar(&serverURL, "url", "", "export from the running server at this URL (token in $SWITCHBOARD_TOKEN) instead of the data directory")
		for i, f := range exportFilters {
			fs.StringVar(&values[i], f.flag, "", f.help)
		}
	})
	if err != nil {
		return err
	}
	if tenantID == "" {
		return errors.New("--tenant is required")
	}
	q := url.Values{}
	for i, f := range exportFilters {
		if values[i] != "" {
			q.Set(f.param, values[i])
		}
	}
	// Checked here as the server checks it, so a typo fails before anything is opened.
	eq, err := sparkpost.ParseEventQuery(q, true)
	if err != nil {
		return errors.New(domain.ErrorMessage(err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	out, commit, err := createOutput(output, stdout)
	if err != nil {
		return err
	}
	defer commit(false)
	prog := newProgress(stderr)
	var n int
	if serverURL != "" {
		n, err = exportRemote(ctx, serverURL, tenantID, q, out, prog)
	} else {
		n, err = exportLocal(ctx, cfg, tenantID, eq, out, prog)
	}
	if err != nil {
		return err
	}
	if err := commit(true); err != nil {
		return err
	}
	prog.done(n, output)
	return nil
}

func exportLocal(ctx context.Context, cfg *Config, tenantID string, eq *sparkpost.EventQuery, out io.Writer, prog *progress) (int, error) {
	db, err := store.Open(ctx, cfg.databasePath())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.Tenant(ctx, tenantID); err != nil {
		return 0, fmt.Errorf("tenant %q: %s", tenantID, domain.ErrorMessage(err))
	}
	eq.Filter.TenantID = tenantID
	total, err := db.CountEmailEvents(ctx, eq.Filter)
	if err != nil {
		return 0, err
	}
	prog.total = total
	return sparkpost.WriteEventsCSV(ctx, db, eq, out, prog.update)
}

func exportRemote(ctx context.Context, base, tenantID string, q url.Values, out io.Writer, prog *progress) (int, error) {
	token := os.Getenv("SWITCHBOARD_TOKEN")
	if token == "" {
		return 0, errors.New("--url needs a token (operator, or the tenant's) in SWITCHBOARD_TOKEN")
	}
	u := strings.TrimRight(base, "/") + "/api/v1/tenants/" + url.PathEscape(tenantID) + "/email-events.csv?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct{ Error struct{ Message string } }
		if jsonErr := json.Unmarshal(b, &e); jsonErr == nil && e.Error.Message != "" {
			return 0, fmt.Errorf("%s (HTTP %d)", e.Error.Message, resp.StatusCode)
		}
		return 0, fmt.Errorf("%s answered HTTP %d", base, resp.StatusCode)
	}
	prog.total, _ = strconv.Atoi(resp.Header.Get("X-Total-Count"))
	rc := &recordCounter{}
	buf := make([]byte, 64<<10)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			if _, err := out.Write(buf[:k]); err != nil {
				return 0, err
			}
			rc.scan(buf[:k])
			prog.update(rc.records())
		}
		if rerr == io.EOF {
			break
		} else if rerr != nil {
			// The server cuts the connection when an export fails midway.
			return 0, fmt.Errorf("the export broke off after %d events: %w", rc.records(), rerr)
		}
	}
	return rc.records(), nil
}

// recordCounter counts the CSV records in a stream: line ends outside quotes, less the header.
type recordCounter struct {
	lines    int
	inQuotes bool
}

func (c *recordCounter) scan(b []byte) {
	for _, ch := range b {
		switch ch {
		case '"':
			c.inQuotes = !c.inQuotes
		case '\n':
			if !c.inQuotes {
				c.lines++
			}
		}
	}
}

func (c *recordCounter) records() int { return max(c.lines-1, 0) }

// createOutput opens where the CSV goes. A file is written under a temporary name in the same
// directory (mode 0600: it holds recipients' addresses) and renamed into place only when the
// export completed, so that a failed export never leaves a file that looks whole.
func createOutput(path string, stdout io.Writer) (io.Writer, func(ok bool) error, error) {
	if path == "-" {
		return stdout, func(bool) error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return nil, nil, err
	}
	finished := false
	return f, func(ok bool) error {
		if finished {
			return nil
		}
		finished = true
		if !ok {
			f.Close()
			os.Remove(f.Name())
			return nil
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(f.Name())
			return err
		}
		if err := f.Close(); err != nil {
			os.Remove(f.Name())
			return err
		}
		return os.Rename(f.Name(), path)
	}, nil
}

// progress reports an export's progress on stderr.
type progress struct {
	w     io.Writer
	tty   bool
	total int // 0: unknown
	start time.Time
	last  time.Time
	width int
}

func newProgress(stderr *os.File) *progress {
	now := time.Now()
	p := &progress{w: stderr, start: now, last: now} // the first report comes after one interval
	if fi, err := stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.tty = true
	}
	return p
}

// update is told the number of events written so far; it redraws the bar at most ten times a
// second, or prints a line every five seconds.
func (p *progress) update(n int) {
	now := time.Now()
	every := 5 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	p.print(n, now, false)
}

func (p *progress) done(n int, output string) {
	p.print(n, time.Now(), true)
	dest := output
	if output == "-" {
		dest = "stdout"
	}
	fmt.Fprintf(p.w, "export: %s events written to %s in %s\n", thousands(n), dest, time.Since(p.start).Round(time.Millisecond))
}

func (p *progress) print(n int, now time.Time, final bool) {
	elapsed := now.Sub(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	clock := fmt.Sprintf("%d:%02d", int(elapsed.Minutes()), int(elapsed.Seconds())%60)
	if !p.tty {
		if final {
			return // done prints the summary
		}
		pct := ""
		if p.total > 0 {
			pct = fmt.Sprintf(" of %s (%d%%)", thousands(p.total), min(100, n*100/p.total))
		}
		fmt.Fprintf(p.w, "export: %s events%s, %s events/s, %s elapsed\n", thousands(n), pct, thousands(int(rate)), clock)
		return
	}
	var line string
	if p.total > 0 {
		const bar = 30
		filled := min(bar, n*bar/p.total)
		line = fmt.Sprintf("[%s%s] %3d%%  %s / %s events", strings.Repeat("#", filled), strings.Repeat(".", bar-filled),
			min(100, n*100/p.total), thousands(n), thousands(p.total))
	} else {
		line = thousands(n) + " events"
	}
	line += fmt.Sprintf("  %s events/s  %s", thousands(int(rate)), clock)
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	if final {
		fmt.Fprint(p.w, "\n")
	}
}

// thousands writes n with separators: 1,234,567.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
