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

unit:
	go test -count=1 ./...
