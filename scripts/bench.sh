#!/usr/bin/env bash
# vmleak beside crash and drgn on the same dump, in one run with the tools
# alternating, and vmleak's other commands; a Markdown table for the README.
#
#   bash scripts/bench.sh [DUMP...]       (default: bookworm-kdump's kdump.elf,
#                                          kdump.lzo and kdump.zlib)
#   bash scripts/bench.sh --big [SIZE...]  (the big dumps of scripts/bench-bigdumps.sh,
#                                          built if missing: for each SIZE, default
#                                          1g 2g 4g, the genuine kdump's kdump.elf,
#                                          kdump.lzo and kdump.zlib and QEMU's qemu1.elf)
#   RUNS=5 CRASH_RUNS=3 bash scripts/bench.sh ~/.cache/vmleak/fixtures-big/dumps/bookworm-big1g/qemu1.elf
#
# DUMP is a fixture's dump file (its manifest.json beside it names the
# kernel). Per dump and round, in this order:
#   - vmleak slabs, cold: the page cache dropped (echo 3 >
#     /proc/sys/vm/drop_caches; needs root, else the row says "not dropped"),
#     the start-up cache in place;
#   - drgn 0.3.0's slab_cache_usage() over all caches, cold the same way
#     (in the lab's sid chroot, where the script installs python3-drgn);
#   - vmleak slabs warm (after an unrecorded run that reads vmleak's binary
#     and start-up cache back into the page cache), drgn warm (its cold run
#     did that for drgn), crash 8.0.2's kmem -s warm (CRASH_RUNS rounds
#     only: it takes seconds);
#   - vmleak slabs with an empty start-up cache (the first run on a kernel);
# then, after the rounds, with no drop and after one unrecorded run each,
# RUNS rounds of vmleak info, owners, leaks, check, and diff of the dump
# with itself.
# Each cell is the median of the rounds: wall time, CPU time (user+sys) and
# peak RSS. A last table shows how each tool's cost grows with the guest's
# RAM: per dump, its times against the smallest dump of the same guest
# and file, and vmleak's largest peak RSS over its commands as a share of
# the guest's RAM. On a shared machine wall time mostly measures the wait
# for a core: read CPU time and the ratios. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${RUNS:-5}
CRASH_RUNS=${CRASH_RUNS:-3}
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
dumps=("$@")
if [[ ${1:-} == --big ]]; then
	shift
	sizes=("$@")
	((${#sizes[@]})) || sizes=(1g 2g 4g)
	BIG=${VMLEAK_BIG_FIXTURES:-$FIX-big}
	bash scripts/bench-bigdumps.sh "${sizes[@]}" >&2
	dumps=()
	for z in "${sizes[@]}"; do
		dumps+=("$BIG/dumps/bookworm-kbig$z/kdump.elf" "$BIG/dumps/bookworm-kbig$z/kdump.lzo"
			"$BIG/dumps/bookworm-kbig$z/kdump.zlib" "$BIG/dumps/bookworm-big$z/qemu1.elf")
	done
fi
if ((${#dumps[@]} == 0)); then
	bash testdata/vmcores/build.sh bookworm-kdump >&2
	dumps=("$FIX/dumps/bookworm-kdump/kdump.elf" "$FIX/dumps/bookworm-kdump/kdump.lzo" "$FIX/dumps/bookworm-kdump/kdump.zlib")
fi
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
command -v crash >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq crash >/dev/null
CH=$FIX/chroots/sid
[[ -d $CH ]] || { echo "no sid chroot under $FIX/chroots (testdata/vmcores/build.sh sid-slubdbg makes it)" >&2; exit 1; }
chroot "$CH" drgn --version >/dev/null 2>&1 ||
	chroot "$CH" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-drgn >/dev/null
work=$(mktemp -d)
mkdir -p "$CH/mnt/bench-dump" "$CH/mnt/bench-vmlinux"
cleanup() {
	umount "$CH/mnt/bench-dump" "$CH/mnt/bench-vmlinux" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
cat >"$CH/tmp/vmleak-usage.py" <<'PY'
from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_usage
for s in for_each_slab_cache(prog):
    slab_cache_usage(s)
PY
printf 'kmem -s\nquit\n' >"$work/crash.cmds"
go build -o "$work/vmleak" ./cmd/vmleak
V=$work/vmleak
export VMLEAK_TYPE_CACHE=$work/types

dropped=yes
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || dropped=no; }

# one NAME CMD...: one run, appended to $work/NAME as "wall cpu maxrss_kb"
# ("fail" when the tool exits with a code other than 0, 5 or 7)
one() {
	local name=$1 out rc=0
	shift
	out=$(/usr/bin/time -f '@@ %e %U %S %M' "$@" 2>&1 >/dev/null) || rc=$?
	case $rc in 0 | 5 | 7) ;; *) echo fail >>"$work/$name"; return ;; esac
	grep '^@@ ' <<<"$out" | tail -n1 | awk '{printf "%s %.2f %s\n", $2, $3 + $4, $5}' >>"$work/$name"
}

# med NAME FIELD: the median of a column (1 wall, 2 cpu, 3 rss), "-" if none
med() {
	[[ -s $work/$1 ]] && ! grep -q fail "$work/$1" || { echo -; return; }
	awk -v f="$2" '{print $f}' "$work/$1" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
cell() {
	local w
	[[ -e $work/$1 ]] || { echo "not run"; return; }
	w=$(med "$1" 1)
	[[ $w == - ]] && { echo "fails"; return; }
	echo "$w s, $(med "$1" 2) s CPU, $(($(med "$1" 3) / 1024)) MB"
}
ratio() { awk -v a="$(med "$1" "$3")" -v b="$(med "$2" "$3")" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else printf "-" }'; }

echo "## vmleak beside crash and drgn ($(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2 / 1048576}' /proc/meminfo), load $(cut -d' ' -f1 /proc/loadavg) at the start)"
for d in "${dumps[@]}"; do
	dir=$(dirname "$d")
	root=$(dirname "$(dirname "$dir")")
	vrel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vmlinux"])' "$dir/manifest.json")
	vm=$(readlink -f "$root/$vrel")
	mount --bind -o ro "$dir" "$CH/mnt/bench-dump"
	mount --bind -o ro "$(dirname "$vm")" "$CH/mnt/bench-vmlinux"
	cd_dump=/mnt/bench-dump/$(basename "$d")
	cd_vm=/mnt/bench-vmlinux/$(basename "$vm")
	rm -f "$work"/r.*
	"$V" slabs "$d" --vmlinux "$vm" >/dev/null 2>&1 || true # the start-up cache
	for ((i = 0; i < RUNS; i++)); do
		drop
		one r.cold "$V" slabs "$d" --vmlinux "$vm"
		drop
		one r.drgncold chroot "$CH" drgn -q -c "$cd_dump" -s "$cd_vm" /tmp/vmleak-usage.py
		# Warm means vmleak's own files cached too: the drop before drgn's
		# cold run evicted its binary and start-up cache (26 and 8 MB),
		# which drgn's run does not read back (0.08 s of a 0.03 s run).
		"$V" slabs "$d" --vmlinux "$vm" >/dev/null 2>&1 || true
		one r.warm "$V" slabs "$d" --vmlinux "$vm"
		one r.drgn chroot "$CH" drgn -q -c "$cd_dump" -s "$cd_vm" /tmp/vmleak-usage.py
		((i < CRASH_RUNS)) && one r.crash crash -s "$vm" "$d" -i "$work/crash.cmds"
		one r.first "$V" slabs "$d" --vmlinux "$vm" --type-cache "$(mktemp -d -p "$work")"
	done
	# The other commands warm: after the rounds above, with no drop, once
	# unrecorded each, since leaks and check read much that slabs does not
	# (every referenced object, the kernel's text) and the drops evicted it.
	for ((i = -1; i < RUNS; i++)); do
		for c in info owners leaks check diff; do
			args=("$d")
			[[ $c == diff ]] && args+=("$d")
			if ((i < 0)); then
				"$V" "$c" "${args[@]}" --vmlinux "$vm" >/dev/null 2>&1 || true
			else
				one "r.$c" "$V" "$c" "${args[@]}" --vmlinux "$vm"
			fi
		done
	done
	umount "$CH/mnt/bench-dump" "$CH/mnt/bench-vmlinux"
	echo
	read -r mem smp < <(python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["guest"]; print(g["mem_mib"], g["smp"])' "$dir/manifest.json")
	echo "### $(basename "$dir") \`$(basename "$d")\` ($(du -h --apparent-size "$d" | cut -f1), $mem MiB guest, $smp CPUs), median of $RUNS (crash: $CRASH_RUNS)"
	echo
	echo "| run | vmleak slabs | drgn slab_cache_usage | vmleak / drgn (wall, CPU) | crash kmem -s | vmleak / crash (wall) |"
	echo "|---|---|---|---|---|---|"
	echo "| cold (page cache dropped: $dropped) | $(cell r.cold) | $(cell r.drgncold) | $(ratio r.cold r.drgncold 1), $(ratio r.cold r.drgncold 2) | | |"
	echo "| warm | $(cell r.warm) | $(cell r.drgn) | $(ratio r.warm r.drgn 1), $(ratio r.warm r.drgn 2) | $(cell r.crash) | $(ratio r.warm r.crash 1) |"
	echo "| first run on the kernel (empty start-up cache) | $(cell r.first) | | $(ratio r.first r.drgn 1), $(ratio r.first r.drgn 2) | | |"
	echo
	echo "| vmleak command (warm) | time, CPU, peak RSS | / slabs (CPU) |"
	echo "|---|---|---|"
	for c in info owners leaks check diff; do
		label=$c
		[[ $c == diff ]] && label="diff (the dump with itself)"
		echo "| $label | $(cell "r.$c") | $(ratio "r.$c" r.warm 2) |"
	done
	# The scaling row: the guest without its size (bookworm-kbig4g:
	# bookworm-kbig) and the file without its index (qemu1.elf: qemu.elf),
	# RAM, medians, and the largest vmleak peak RSS of any command.
	kind="$(basename "$dir" | sed 's/[0-9]*g$//') $(basename "$d" | sed 's/[0-9]*\././')"
	maxrss=0
	for c in cold warm first info owners leaks check diff; do
		r=$(med "r.$c" 3)
		[[ $r != - ]] && ((r > maxrss)) && maxrss=$r
	done
	echo "$kind|$mem|$(basename "$dir") \`$(basename "$d")\`|$(med r.cold 1)|$(med r.warm 1)|$(med r.drgn 1)|$(med r.crash 1)|$maxrss" >>"$work/scale"
done
if [[ -s $work/scale ]] && (($(cut -d'|' -f1 "$work/scale" | sort | uniq -d | wc -l) > 0)); then
	echo
	echo "### How the cost grows with RAM"
	echo
	echo "Each time (median wall) and, in brackets, the same against the smallest dump of the same guest and file; vmleak's peak RSS is the largest of all its commands on the dump."
	echo
	echo "| dump | guest RAM | vmleak slabs cold | vmleak slabs warm | drgn warm | crash kmem -s | vmleak / drgn (warm) | vmleak peak RSS (share of RAM) |"
	echo "|---|---|---|---|---|---|---|---|"
	sort -t'|' -k1,1 -k2,2n "$work/scale" | awk -F'|' '
		function x(v, b) { return (v == "-" || b == "-" || b + 0 == 0) ? v : sprintf("%s s (%.2f ×)", v, v / b) }
		$1 != k { k = $1; c = $4; w = $5; g = $6; r = $7 }
		{ printf "| %s | %d MiB | %s | %s | %s | %s | %s | %d MB (%.1f %%) |\n", $3, $2, x($4, c), x($5, w), x($6, g), x($7, r),
			($5 == "-" || $6 == "-" || $6 + 0 == 0) ? "-" : sprintf("%.2f", $5 / $6), $8 / 1024, $8 / 1024 / $2 * 100 }'
fi
echo
echo "load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
