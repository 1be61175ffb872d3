# Switchboard. `make run` starts it on :8080 with its state in ./data; `make test` is what CI runs.
GO       ?= go
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)

.PHONY: run build test test-crash vet fmt-check fuzz bench clean

# Ctrl-C makes the terminal send SIGINT to its whole foreground process group. `go run` exits 1
# when interrupted, whatever its program did, and make, in that group too, dies of the signal
# however cleanly serve stops ("make: *** … Error 1" or "Interrupt", exit status 130). So run
# builds the binary and, in a terminal, starts it as a job of its own (set -m): only serve gets
# the SIGINT, stops and exits 0, and make exits with it. Ctrl-Z is ignored there: a job stopped
# under this shell would be left behind when it exits. Without a terminal, or with make in the
# background, serve replaces the shell (exec), so a SIGTERM to make reaches serve.
run: build
	@if [ -t 0 ] && [ -t 2 ] && ps -o pgid= -o tpgid= -p $$$$ 2>/dev/null | awk '$$1 == $$2 { fg = 1 } END { exit !fg }'; then \
	  set -m; trap '' TSTP; bin/switchboard serve; exit $$?; \
	else \
	  exec bin/switchboard serve; \
	fi

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/switchboard ./cmd/switchboard

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test: vet fmt-check
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# The crash test at length: SIGKILL under mixed load, CRASH_ROUNDS times (make test runs 3).
CRASH_ROUNDS ?= 20
test-crash:
	SWITCHBOARD_CRASH_ROUNDS=$(CRASH_ROUNDS) $(GO) test -race -count=1 -run 'TestCrashUnderMixedLoad|TestSparkPostSurvivesKill' -v ./cmd/switchboard

# Every fuzz target runs for FUZZTIME (CI runs this after `make test`). A crasher found is saved
# under the package's testdata/fuzz and then runs as a plain regression test in `make test`.
# FUZZTIME is a count of executions, not a duration: with a duration, Go 1.26's fuzz coordinator
# can report "context deadline exceeded" as a failure when the time is up on a busy machine
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race. 30,000 runs take
# 3–10 s per target on 2 cores.
FUZZTIME ?= 30000x
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Benchmarks report figures and ratios measured in the same run; they are never assertions.
# The Go benchmarks first, then the load harness (real server on loopback, SPEC §7 ratios,
# bench-report.json). BENCH_PHASE sets how long each load phase runs.
BENCH_PHASE ?= 10s
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)
	$(GO) run ./cmd/switchboard-bench -phase $(BENCH_PHASE) -out bench-report.json

clean:
	rm -rf bin
