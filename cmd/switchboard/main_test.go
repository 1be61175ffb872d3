package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/e2e"
)

var binary string

// TestMain builds the real binary once; the end-to-end tests run it as a separate process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `switchboard serve` with test-friendly helpers.
type proc struct {
	*e2e.Proc
}

// startServe runs the binary on 127.0.0.1:0 with dataDir and waits until it listens; the test's
// end kills it if it still runs.
func startServe(t *testing.T, dataDir string, env ...string) *proc {
	t.Helper()
	p, err := e2e.Start(binary, dataDir, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return &proc{p}
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	code, err := p.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func (p *proc) do(t *testing.T, method, path, token string, body string) (int, []byte) {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	status, out, err := (&e2e.Client{Base: p.URL(), Token: token}).Do(method, path, b)
	if err != nil {
		t.Fatal(err)
	}
	return status, out
}

func (p *proc) operatorToken(t *testing.T) string {
	t.Helper()
	tok, err := p.OperatorToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var tokenLine = regexp.MustCompile(`^eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+$`)

func TestServeRestartKeepsTenants(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)

	op := p.operatorToken(t)
	status, body := p.do(t, "POST", "/api/v1/tenants", op, `{"name": "Acme"}`)
	if status != 201 {
		t.Fatalf("create tenant: %d %s", status, body)
	}
	var tenant struct{ ID string }
	json.Unmarshal(body, &tenant)
	status, body = p.do(t, "PUT", "/api/v1/tenants/"+tenant.ID+"/segment", op, `{"write_key": "wk_secret_e2e_5678"}`)
	if status != 200 {
		t.Fatalf("put write key: %d %s", status, body)
	}
	for _, f := range []string{"switchboard.db", "jwt.key", "encryption.key"} {
		fi, err := os.Stat(filepath.Join(dataDir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if f != "switchboard.db" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; want 0600", f, fi.Mode().Perm())
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d; stderr:\n%s", code, p.Stderr.String())
	}
	logs := p.Stderr.String()

	p2 := startServe(t, dataDir)
	// The old operator token still verifies: the key files were reused.
	status, body = p2.do(t, "GET", "/api/v1/tenants/"+tenant.ID, op, "")
	if status != 200 || !strings.Contains(string(body), `"Acme"`) {
		t.Fatalf("tenant after restart: %d %s", status, body)
	}
	status, body = p2.do(t, "GET", "/api/v1/tenants/"+tenant.ID+"/segment", op, "")
	if status != 200 || !strings.Contains(string(body), "…5678") {
		t.Fatalf("write key after restart: %d %s", status, body)
	}
	if code := p2.stop(t); code != 0 {
		t.Fatalf("second exit code = %d", code)
	}
	logs += p2.Stderr.String()
	if p2.PrintedToken() {
		t.Error("a second start printed an operator token again")
	}
	for _, secret := range []string{op, "wk_secret_e2e_5678"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the log")
		}
	}
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Errorf("no request log lines; the log check above saw nothing:\n%s", logs)
	}
}

func TestTokenCommandMintsOffline(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	op := p.operatorToken(t)
	_, body := p.do(t, "POST", "/api/v1/tenants", op, `{"name": "Acme"}`)
	var tenant struct{ ID string }
	json.Unmarshal(body, &tenant)

	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(binary, append([]string{"token", "--data-dir", dataDir}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	out, stderr, code := run("--operator", "--ttl", "1h")
	if code != 0 || !tokenLine.MatchString(strings.TrimSpace(out)) {
		t.Fatalf("token --operator: code %d, stdout %q, stderr %q", code, out, stderr)
	}
	if status, _ := p.do(t, "GET", "/api/v1/tenants", strings.TrimSpace(out), ""); status != 200 {
		t.Fatalf("offline operator token refused by the server: %d", status)
	}
	out, _, code = run("--tenant", tenant.ID)
	tt := strings.TrimSpace(out)
	if code != 0 {
		t.Fatalf("token --tenant: code %d", code)
	}
	if status, _ := p.do(t, "GET", "/api/v1/tenants/"+tenant.ID, tt, ""); status != 200 {
		t.Fatalf("offline tenant token refused: %d", status)
	}
	if status, _ := p.do(t, "GET", "/api/v1/tenants", tt, ""); status != 403 {
		t.Fatalf("tenant token on operator route: %d", status)
	}
	if _, stderr, code := run("--tenant", "ten_nosuchtenant0000"); code == 0 || !strings.Contains(stderr, "not found") {
		t.Fatalf("token for a missing tenant: code %d, stderr %q", code, stderr)
	}
	if _, _, code := run(); code == 0 {
		t.Fatal("token with neither --operator nor --tenant succeeded")
	}
	p.stop(t)
}

func TestMigrateAndVersion(t *testing.T) {
	dataDir := t.TempDir()
	out, err := exec.Command(binary, "migrate", "--data-dir", dataDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "schema version") {
		t.Fatalf("migrate: %v %s", err, out)
	}
	out, err = exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "switchboard ") {
		t.Fatalf("version: %v %s", err, out)
	}
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_LOG_LEVEL=loud")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "SWITCHBOARD_LOG_LEVEL") {
		t.Fatalf("bad log level accepted: %v %s", err, out)
	}
}
