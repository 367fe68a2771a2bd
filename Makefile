# vmleak: the two commands of the README, and their parts.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin

.PHONY: sample test fixtures check unit

# Builds the default sample dump if needed and runs vmleak on it.
sample:
	bash scripts/sample.sh

# Builds every real vmcore fixture (cached), then vets and runs every test.
test: fixtures check unit

fixtures:
	bash testdata/vmcores/build.sh

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
	go test -count=1 ./...
	cd fleet && CGO_ENABLED=1 go test -count=1 ./...
	cd browser && go test -count=1 ./...
