# shellcheck shell=bash
# Shared parts of the benchmark scripts: sourced, not run.
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
RUNS=${RUNS:-5}

# measure CMD... -> "seconds maxrss_kb" of the median of RUNS runs (a
# non-zero exit, such as 5 for partial or 7 for findings, is a result like
# any other here)
measure() {
	local i
	for ((i = 0; i < RUNS; i++)); do
		{ /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null || true; } | tail -n1
	done | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {print}'
}

# fixture_vmlinux NAME -> the vmlinux of a fixture's kernel
fixture_vmlinux() {
	local rel
	rel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_release"])' "$FIX/dumps/$1/manifest.json")
	echo "$FIX/kernels/$rel/vmlinux"
}

# mb KB -> megabytes, rounded
mb() { echo "$1/1024" | bc; }
