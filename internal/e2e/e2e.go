// Package e2e runs the real switchboard binary as a separate process and talks to it over
// loopback HTTP: the end-to-end tests and the benchmark harness share it, so both exercise the
// program exactly as an operator runs it.
package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles ./cmd/switchboard (relative to the module root found from dir) into outDir.
func Build(moduleRoot, outDir string) (string, error) {
	bin := filepath.Join(outDir, "switchboard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/switchboard")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Proc is a running `switchboard serve`.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string // host:port it listens on
	// MetricsAddr is the operator listener's host:port (metrics and /debug/pprof/), when serve
	// was started with --metrics-addr.
	MetricsAddr string
	Stdout      *Buffer
	Stderr      *Buffer
	pipe        *io.PipeWriter
}

// Buffer is a bytes.Buffer safe for one writer and concurrent readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	listening        = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)
	metricsListening = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)
)

// Start runs `bin serve` on 127.0.0.1:0 with dataDir and waits until it listens. The fake
// Segment and workflow receivers of tests and benchmarks listen on loopback, so outbound calls
// to 127.0.0.0/8 are allowed (env may say otherwise).
func Start(bin, dataDir string, env ...string) (*Proc, error) {
	return StartArgs(bin, dataDir, nil, env...)
}

// StartArgs is Start with more arguments for serve.
func StartArgs(bin, dataDir string, args []string, env ...string) (*Proc, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	cmd.Env = append(append(os.Environ(), "SWITCHBOARD_OUTBOUND_ALLOW=127.0.0.0/8"), env...)
	p := &Proc{Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}}
	cmd.Stdout = p.Stdout
	pr, pw := io.Pipe()
	p.pipe = pw
	cmd.Stderr = io.MultiWriter(p.Stderr, pw)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if m := metricsListening.FindStringSubmatch(sc.Text()); m != nil {
				p.MetricsAddr = m[1] // logged before "listening", read after it
			}
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case p.Addr = <-found:
		return p, nil
	case <-time.After(90 * time.Second):
		p.Kill()
		return nil, fmt.Errorf("serve did not start listening; stderr:\n%s", p.Stderr.String())
	}
}

// URL returns the base URL of the server.
func (p *Proc) URL() string { return "http://" + p.Addr }

var tokenLine = regexp.MustCompile(`(?m)^(eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)$`)

// OperatorToken waits for the token a first start prints on stdout. stdout is copied from the
// process by a goroutine of its own, so it may trail the log line that said "listening".
func (p *Proc) OperatorToken() (string, error) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := tokenLine.FindStringSubmatch(p.Stdout.String()); m != nil {
			return m[1], nil
		}
	}
	return "", fmt.Errorf("no operator token on stdout:\n%s", p.Stdout.String())
}

// PrintedToken reports whether the process printed an operator token (read after it exited).
func (p *Proc) PrintedToken() bool { return tokenLine.MatchString(p.Stdout.String()) }

// Stop sends SIGTERM and waits up to 10 s; it returns the exit code.
func (p *Proc) Stop() (int, error) {
	p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.Cmd.Wait() }()
	select {
	case <-done:
		p.pipe.Close()
		return p.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(10 * time.Second):
		p.Kill()
		return -1, errors.New("serve did not exit within 10 s of SIGTERM")
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	if p.Cmd.ProcessState == nil {
		p.Cmd.Process.Kill()
		p.Cmd.Wait()
	}
	p.pipe.Close()
}

// CPUSeconds reads the CPU time (user and system) the process has used so far from /proc; 0
// when it cannot be read. The difference of two readings is a phase's CPU cost.
func (p *Proc) CPUSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux Go runs on.
const clockTicks = 100

// PeakRSSMiB reads the process's peak resident set size (VmHWM) from /proc.
func (p *Proc) PeakRSSMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// Client calls the server's HTTP API.
type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// Do sends a request with the client's bearer token (if any) plus headers given as name, value
// pairs, and returns the status and body.
func (c *Client) Do(method, path string, body []byte, headers ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
