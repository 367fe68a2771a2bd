#!/usr/bin/env bash
# Side-by-side timing of `vmleak owners` and `vmleak slabs` on the same dumps:
# attribution must cost at most twice the census it stands on.
#
#   bash scripts/bench-owners.sh [RUNS]      (default 5 runs each; median reported)
#
# Dumps: the 1 GiB 6.1 kdump and the slub_debug=U fixtures (6.1, 6.12, 7.x),
# where every object's allocation track and stack are read and symbolized.
# Builds them with testdata/vmcores/build.sh if needed. Warm type-index cache.
# Not a test: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
DUMPS=(bookworm-kdump:kdump.elf bookworm-slubdbg:qemu1.zlib trixie-slubdbg:qemu1.zlib sid-slubdbg:qemu1.zlib)
bash testdata/vmcores/build.sh "${DUMPS[@]%%:*}" >&2
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
go build -o /tmp/vmleak-bench ./cmd/vmleak
idx=$(mktemp -d)
trap 'rm -rf "$idx"' EXIT

# measure CMD... -> "seconds maxrss_kb" of the median run
measure() {
	local i
	for ((i = 0; i < RUNS; i++)); do
		/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -n1
	done | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {print}'
}

printf '%-18s %-11s %9s %9s %9s %9s %9s %9s %7s\n' fixture file slabs_s slabs_MB owners_s owners_MB stacks_s stacks_MB ratio
for spec in "${DUMPS[@]}"; do
	name=${spec%%:*} file=${spec#*:}
	d=$FIX/dumps/$name/$file
	rel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_release"])' "$FIX/dumps/$name/manifest.json")
	vmlinux=$FIX/kernels/$rel/vmlinux
	run() { env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench "$@" "$d" --vmlinux "$vmlinux"; }
	run slabs >/dev/null 2>&1 || true # fill the type-index cache
	read -r st sm < <(measure env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench slabs "$d" --vmlinux "$vmlinux")
	read -r ot om < <(measure env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench owners "$d" --vmlinux "$vmlinux")
	read -r kt km < <(measure env XDG_CACHE_HOME="$idx" /tmp/vmleak-bench owners --stacks "$d" --vmlinux "$vmlinux")
	printf '%-18s %-11s %9s %9.0f %9s %9.0f %9s %9.0f %6.2fx\n' "$name" "$file" "$st" "$(echo "$sm/1024" | bc -l)" \
		"$ot" "$(echo "$om/1024" | bc -l)" "$kt" "$(echo "$km/1024" | bc -l)" "$(echo "$ot/$st" | bc -l)"
done
echo "median of $RUNS runs; ratio = owners / slabs (target <= 2); $(nproc) CPUs" >&2
