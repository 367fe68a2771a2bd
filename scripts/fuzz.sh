#!/usr/bin/env bash
# Runs every fuzz target of the root module for FUZZTIME each (default 10s),
# one at a time on one worker, under a soft (GOMEMLIMIT) and a hard (ulimit
# -v) memory limit. A crasher is written to the package's
# testdata/fuzz/<Target>/ and fails the run; go test replays it from then on.
#   FUZZTIME=10m scripts/fuzz.sh           all targets
#   scripts/fuzz.sh ./elfcore FuzzKdump    one
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
export GOMEMLIMIT=${GOMEMLIMIT:-1GiB}
fuzztime=${FUZZTIME:-10s}
ulimit -v $((8 << 20)) # KiB: 8 GiB of address space
if [ $# -eq 2 ]; then
	targets="$1 $2"
else
	targets=$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./fleet/\|^./browser/' | sort | while read -r f; do
		for t in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
			echo "./$(dirname "${f#./}") $t"
		done
	done)
fi
echo "$targets" | while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "== $pkg $target ($fuzztime)"
	go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -parallel=1 -fuzzminimizetime=5s
done
