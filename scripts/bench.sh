#!/usr/bin/env bash
# Side-by-side timing of `vmleak slabs` and crash's `kmem -s` on the same dumps.
#
#   bash scripts/bench.sh [RUNS]        (default 5 runs each; median reported)
#
# Uses the fixtures built by testdata/vmcores/build.sh (builds bookworm-kdump if
# needed). Prints wall time and peak memory (max RSS) of each tool and the
# ratio, per dump file. vmleak runs twice per dump: "cold" with an empty type
# index cache, "warm" with it in place (BTF answers most types, so the two are
# close). Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
bash testdata/vmcores/build.sh bookworm-kdump >&2
command -v crash >/dev/null || { echo "crash is not installed (apt-get install crash)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
go build -o /tmp/vmleak-bench ./cmd/vmleak
m=$FIX/dumps/bookworm-kdump
rel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_release"])' "$m/manifest.json")
vmlinux=$FIX/kernels/$rel/vmlinux
idx=$(mktemp -d)
trap 'rm -rf "$idx"' EXIT

# measure CMD... -> "seconds maxrss_kb" of the median run
measure() {
	local i out
	for ((i = 0; i < RUNS; i++)); do
		out=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -n1)
		echo "$out"
	done | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {print}'
}

cmds=$(mktemp)
printf 'kmem -s\nquit\n' >"$cmds"
printf '%-16s %12s %10s %12s %10s %12s %10s %8s\n' dump crash_s crash_MB vmleak_cold vmleak_MB vmleak_warm vmleak_MB ratio
for f in kdump.elf kdump.lzo kdump.zlib; do
	d=$m/$f
	read -r ct cm < <(measure crash -s "$vmlinux" "$d" -i "$cmds")
	# cold: a fresh index cache every run
	read -r vct vcm < <(measure sh -c 'XDG_CACHE_HOME=$(mktemp -d -p "$1") exec /tmp/vmleak-bench slabs "$2" --vmlinux "$3"' sh "$idx" "$d" "$vmlinux")
	read -r vwt vwm < <(measure env XDG_CACHE_HOME="$idx/warm" /tmp/vmleak-bench slabs "$d" --vmlinux "$vmlinux")
	printf '%-16s %12s %10.0f %12s %10.0f %12s %10.0f %7.1fx\n' "$f" "$ct" "$(echo "$cm/1024" | bc -l)" \
		"$vct" "$(echo "$vcm/1024" | bc -l)" "$vwt" "$(echo "$vwm/1024" | bc -l)" "$(echo "$ct/$vwt" | bc -l)"
done
rm -f "$cmds"
echo "median of $RUNS runs; crash $(crash -v 2>/dev/null | awk '/^crash /{print $2; exit}'), kernel $rel, $(nproc) CPUs" >&2
