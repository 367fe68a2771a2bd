#!/usr/bin/env bash
# vmleak beside its peers on the same dumps, alternating tools in one run:
# `vmleak slabs` cold (empty type-index cache) and warm, crash's `kmem -s`
# (6.1 and 5.10, the kernels crash 8.0 reads) and drgn 0.3.0's
# slab_cache_usage() over every cache (its counter method). Median wall
# time and its run's peak RSS; ratios against drgn and crash.
#
#   bash scripts/bench-peers.sh [RUNS]        (default 5)
#
# drgn runs in the lab's sid chroot (testdata/vmcores/build.sh makes it to
# build the test modules), where this script installs python3-drgn once;
# the fixtures are bind-mounted into it read-only for the run. Run as root.
# Not a test: numbers depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
FILES=(bookworm-kdump/kdump.elf bookworm-kdump/kdump.lzo bookworm-kdump/kdump.zlib bullseye-kdump/kdump.elf
	trixie-qemu/qemu1.zlib sid-qemu/qemu1.zlib)
bash testdata/vmcores/build.sh bookworm-kdump bullseye-kdump trixie-qemu sid-qemu sid-slubdbg >&2
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
CH=$FIX/chroots/sid
[[ -d $CH ]] || { echo "no sid chroot under $FIX/chroots (build.sh sid-slubdbg makes it)" >&2; exit 1; }
chroot "$CH" drgn --version >/dev/null 2>&1 ||
	chroot "$CH" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-drgn >/dev/null
mkdir -p "$CH/fix"
mountpoint -q "$CH/fix" || mount --bind -o ro "$FIX" "$CH/fix"
idx=$(mktemp -d)
cmds=$(mktemp)
trap 'umount "$CH/fix" 2>/dev/null || true; rm -rf "$idx" "$cmds"' EXIT
cat >"$CH/tmp/vmleak-usage.py" <<'PY'
from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_usage
for s in for_each_slab_cache(prog):
    slab_cache_usage(s)
PY
printf 'kmem -s\nquit\n' >"$cmds"
go build -o /tmp/vmleak-bench ./cmd/vmleak

# one CMD... -> "seconds maxrss_kb" (0 0 when the tool fails)
one() { /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -n1 | grep -E '^[0-9.]+ [0-9]+$' || echo "0 0"; }
median() { sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {print}'; }
mb() { echo $(($1 / 1024)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }

printf '%-26s %13s %13s %13s %13s %9s %9s %9s\n' file "vmleak cold" "vmleak warm" drgn crash cold/drgn warm/drgn warm/crash
for f in "${FILES[@]}"; do
	name=${f%%/*}
	rel=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kernel_release"])' "$FIX/dumps/$name/manifest.json")
	d=$FIX/dumps/$f
	v=$FIX/kernels/$rel/vmlinux
	XDG_CACHE_HOME="$idx/warm" /tmp/vmleak-bench slabs "$d" --vmlinux "$v" >/dev/null 2>&1 || true
	: >"$idx/c" >"$idx/w" >"$idx/d" >"$idx/k"
	for ((i = 0; i < RUNS; i++)); do
		one sh -c 'XDG_CACHE_HOME=$(mktemp -d -p "$1") exec /tmp/vmleak-bench slabs "$2" --vmlinux "$3"' sh "$idx" "$d" "$v" >>"$idx/c"
		one env XDG_CACHE_HOME="$idx/warm" /tmp/vmleak-bench slabs "$d" --vmlinux "$v" >>"$idx/w"
		one chroot "$CH" drgn -q -c "/fix/dumps/$f" -s "/fix/kernels/$rel/vmlinux" /tmp/vmleak-usage.py >>"$idx/d"
		case $rel in
		5.10.* | 6.1.*) one crash -s "$v" "$d" -i "$cmds" >>"$idx/k" ;;
		*) echo "0 0" >>"$idx/k" ;;
		esac
	done
	read -r ct cm < <(median <"$idx/c")
	read -r wt wm < <(median <"$idx/w")
	read -r dt dm < <(median <"$idx/d")
	read -r kt km < <(median <"$idx/k")
	crashcol="-" drgncol="fails"
	[[ $kt != 0 ]] && crashcol="$kt s $(mb "$km")M"
	[[ $dt != 0 ]] && drgncol="$dt s $(mb "$dm")M"
	printf '%-26s %13s %13s %13s %13s %9s %9s %9s\n' "$f" "$ct s $(mb "$cm")M" "$wt s $(mb "$wm")M" "$drgncol" "$crashcol" \
		"$(ratio "$ct" "$dt")" "$(ratio "$wt" "$dt")" "$(ratio "$wt" "$kt")"
done
echo "median of $RUNS runs, tools alternating; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%F)" >&2
