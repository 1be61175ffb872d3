package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-hub/switchboard/internal/e2e"
)

// profileDir, when set (-profile), receives a CPU profile of the server for each load phase,
// taken from the operator listener's /debug/pprof/profile while the load runs.
var profileDir string

// startProfile starts a CPU profile of p for d, written to profileDir/name.pprof, and returns a
// function that waits for it to be written. Without -profile it does nothing.
func startProfile(p *e2e.Proc, name string, d time.Duration) (wait func() error) {
	if profileDir == "" || p.MetricsAddr == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		secs := max(1, int(d.Seconds()))
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.MetricsAddr, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			done <- fmt.Errorf("profile %s: %s", name, resp.Status)
			return
		}
		f, err := os.Create(filepath.Join(profileDir, name+".pprof"))
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return func() error { return <-done }
}
