#!/usr/bin/env bash
# Timing of `vmleak diff` on the before/after fixture pair, against the
# commands it must not be slower than:
#
#   bash scripts/bench-diff.sh [RUNS]        (default 5 runs each; median reported)
#
# - diff of two summaries (JSON and Parquet): the target is 50 ms, process
#   start included;
# - diff of two dumps, against the sum of two `vmleak slabs` runs on the
#   same dumps (diff summarizes both dumps at once, census + owners +
#   meminfo each).
# Uses the bookworm-pair fixture built by testdata/vmcores/build.sh (it says how
# to build it if it is missing). Not a test: numbers depend on the machine and
# its load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
[[ -f $FIX/dumps/bookworm-pair/manifest.json ]] || { echo "no bookworm-pair fixture: bash testdata/vmcores/build.sh bookworm-pair" >&2; exit 1; }
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/vmleak" ./cmd/vmleak
m=$FIX/dumps/bookworm-pair
rel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_release"])' "$m/manifest.json")
vmlinux=$FIX/kernels/$rel/vmlinux
a=$m/qemu1.zlib b=$m/qemu2.zlib
v=$bin/vmleak

# measure CMD... -> "seconds maxrss_kb" of the median run (exit 0 or 5 or 6)
measure() {
	local i out
	for ((i = 0; i < RUNS; i++)); do
		out=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -n1) || true
		echo "$out"
	done | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {print}'
}

"$v" summary "$a" --vmlinux "$vmlinux" -o "$bin/a.json"
"$v" summary "$b" --vmlinux "$vmlinux" -o "$bin/b.json"
"$v" summary "$a" --vmlinux "$vmlinux" -o "$bin/a.parquet"
"$v" summary "$b" --vmlinux "$vmlinux" -o "$bin/b.parquet"
ls -l "$bin"/*.json "$bin"/*.parquet | awk '{printf "summary %-10s %7d bytes\n", $NF ~ /json/ ? "json" : "parquet", $5}' >&2

printf '%-34s %9s %9s\n' what seconds MB
row() { printf '%-34s %9s %9.0f\n' "$1" "$2" "$(echo "$3/1024" | bc -l)"; }
read -r t1 m1 < <(measure "$v" slabs "$a" --vmlinux "$vmlinux")
row "slabs qemu1.zlib" "$t1" "$m1"
read -r t2 m2 < <(measure "$v" slabs "$b" --vmlinux "$vmlinux")
row "slabs qemu2.zlib" "$t2" "$m2"
row "  sum of the two" "$(echo "$t1+$t2" | bc -l)" 0
read -r t m < <(measure "$v" summary "$b" --vmlinux "$vmlinux" -o "$bin/x.json")
row "summary qemu2.zlib" "$t" "$m"
read -r t m < <(measure "$v" diff "$a" "$b" --vmlinux "$vmlinux")
row "diff qemu1.zlib qemu2.zlib" "$t" "$m"
read -r t m < <(measure "$v" diff "$bin/a.json" "$bin/b.json")
row "diff a.json b.json" "$t" "$m"
read -r t m < <(measure "$v" diff "$bin/a.parquet" "$bin/b.parquet")
row "diff a.parquet b.parquet" "$t" "$m"
read -r t m < <(measure "$v" diff "$bin/a.json" "$bin/b.json" --json)
row "diff a.json b.json --json" "$t" "$m"
echo "median of $RUNS runs; kernel $rel, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
