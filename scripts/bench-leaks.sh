#!/usr/bin/env bash
# Wall time and peak RSS of `vmleak leaks` beside `vmleak slabs` (the census
# it stands on), median of RUNS runs, warm type-index cache.
#
#   bash scripts/bench-leaks.sh [RUNS]      (default 5)
#
# Target on the 1 GiB 6.1 kdump (bookworm-kdump/kdump.elf): <= 3 s and
# <= 512 MiB. The slub_debug=U dumps add reading every tracked object's
# allocation track for attribution. Fixtures come from
# testdata/vmcores/build.sh; missing ones are skipped. Not a test: numbers
# depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
DUMPS=(bookworm-kdump:kdump.elf bookworm-kdump:kdump.lzo bookworm-slubdbg:qemu1.zlib trixie-slubdbg:qemu1.zlib sid-slubdbg:qemu1.zlib)
[[ -x /usr/bin/time ]] || { echo "bench-leaks: needs GNU time (/usr/bin/time)" >&2; exit 2; }
go build -o /tmp/vmleak-bench-leaks ./cmd/vmleak
idx=$(mktemp -d)
trap 'rm -rf "$idx"' EXIT

# measure CMD... -> "seconds maxrss_kb" of the median run (exit code 5,
# partial, is a result like any other here)
measure() {
	local i
	for ((i = 0; i < RUNS; i++)); do
		{ /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null || true; } | tail -n1
	done | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {print}'
}

printf '%-18s %-11s %9s %9s %9s %9s %7s\n' fixture file slabs_s slabs_MB leaks_s leaks_MB ratio
for spec in "${DUMPS[@]}"; do
	name=${spec%%:*} file=${spec#*:}
	d=$FIX/dumps/$name/$file
	if [[ ! -f $d ]]; then
		echo "bench-leaks: $d missing, skipped" >&2
		continue
	fi
	rel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_release"])' "$FIX/dumps/$name/manifest.json")
	vmlinux=$FIX/kernels/$rel/vmlinux
	env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench-leaks slabs "$d" --vmlinux "$vmlinux" >/dev/null 2>&1 || true # fill the type-index cache
	read -r st sm < <(measure env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench-leaks slabs "$d" --vmlinux "$vmlinux")
	read -r lt lm < <(measure env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench-leaks leaks "$d" --vmlinux "$vmlinux")
	printf '%-18s %-11s %9s %9.0f %9s %9.0f %6.2fx\n' "$name" "$file" "$st" "$(echo "$sm/1024" | bc -l)" \
		"$lt" "$(echo "$lm/1024" | bc -l)" "$(echo "$lt/$st" | bc -l)"
done
echo "median of $RUNS runs; ratio = leaks / slabs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
