package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/e2e"
)

// TestSecondServeOnTheSameDataDirSaysSo: a second serve on a data directory in use exits 1
// saying so (not SQLite's "database is locked"), and the first keeps serving.
func TestSecondServeOnTheSameDataDirSaysSo(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	code, _, errs := runMain(t, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errs, "data directory "+dataDir+" is in use by another switchboard serve (pid ") {
		t.Fatalf("second serve: exit %d: %s", code, errs)
	}
	if status, body := p.do(t, "GET", "/readyz", "", ""); status != 200 {
		t.Fatalf("the first serve after the second tried: %d %s", status, body)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestServeRefusesAMissingDatabaseBesideOldKeys: with the database gone but the key files of
// the installation still there, serve refuses to start (no new empty database, no new operator
// token) unless told to start afresh.
func TestServeRefusesAMissingDatabaseBesideOldKeys(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServe(t, dataDir)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, f := range []string{"switchboard.db", "switchboard.db-wal", "switchboard.db-shm"} {
		os.Remove(filepath.Join(dataDir, f))
	}
	code, out, errs := runMain(t, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errs, "is missing, but "+dataDir+" holds the keys of an earlier installation") ||
		!strings.Contains(errs, "--start-fresh") || strings.Contains(out, "Operator token") {
		t.Fatalf("serve on a lost database: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "switchboard.db")); err == nil {
		t.Fatal("serve made a new database although it refused to start")
	}
	fresh, err := e2e.StartArgs(binary, dataDir, []string{"--start-fresh"})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Kill()
	if _, err := fresh.OperatorToken(); err != nil {
		t.Fatalf("serve --start-fresh did not print an operator token for the new database: %v", err)
	}
}
