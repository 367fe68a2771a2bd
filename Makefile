# vmleak: the two commands of the README, and their parts.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

.PHONY: sample test fixtures live check unit race fuzz fuzz-smoke

# Builds the default sample dump if needed and runs vmleak on it.
sample:
	bash scripts/sample.sh

# Builds every real vmcore fixture (cached), then vets and runs every test.
# The DuckDB driver's first cgo build (almost 5 minutes cold) runs beside the
# fixture build, which spends minutes waiting on downloads; the unit step
# then finds it in Go's build cache. Its errors, if any, show there.
test:
	@(cd fleet && CGO_ENABLED=1 go test -count=1 -run '^$$' ./... >/dev/null 2>&1) & \
	$(MAKE) --no-print-directory fixtures live; rc=$$?; wait; exit $$rc
	$(MAKE) --no-print-directory check unit race fuzz-smoke

fixtures:
	bash testdata/vmcores/build.sh

# Runs this tree's vmleak, built static, inside a live 6.1 guest on
# /proc/kcore (testdata/vmcores/live.sh): about 3 minutes whenever the binary
# changed, nothing when it did not. The tests check the run was this binary.
live:
	@d=$$(mktemp -d) && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o $$d/vmleak ./cmd/vmleak && \
	bash testdata/vmcores/build.sh live $$d/vmleak; rc=$$?; rm -rf $$d; exit $$rc

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	go vet ./...
	cd fleet && CGO_ENABLED=1 go vet ./...
	cd browser && go vet ./...
	@# The vmleak binary stays pure Go: only the fleet tests link DuckDB.
	CGO_ENABLED=0 go build -o /dev/null ./cmd/vmleak

# The root module's ./... does not reach the nested modules, fleet (DuckDB,
# cgo) and browser (chromedp, headless Chromium): each is tested on its own.
unit:
	go test -count=1 -timeout 30m ./...
	cd fleet && CGO_ENABLED=1 go test -count=1 ./...
	cd browser && go test -count=1 ./...

# The race detector on every package of the root module (census and scan
# workers, caches behind mutexes, the memory watcher among them), on their
# synthetic and unit tests: -short skips the real dumps, whose runs under
# -race take over half an hour (see README, "Untrusted and damaged dumps").
# checkptr stays on for our code; parquet-go v0.32.0 builds an unsafe slice
# on a nil pointer from a corrupt file (a fatal error under checkptr, an
# error Decode recovers from without it).
RACE_PKGS := ./...
race:
	go test -race -short -count=1 -gcflags=github.com/parquet-go/parquet-go/...=-d=checkptr=0 $(RACE_PKGS)

# Every fuzz target for FUZZTIME (default 10s) under a memory limit; the
# committed corpora are replayed by every go test run already.
fuzz:
	bash scripts/fuzz.sh

fuzz-smoke:
	FUZZTIME=3s bash scripts/fuzz.sh
