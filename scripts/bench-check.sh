#!/usr/bin/env bash
# Wall time and peak RSS of `vmleak check` (every check, and the slab
# memory of suspect modules) beside `vmleak info` (opening the dump and the
# vmlinux, which every command pays), median of RUNS runs, warm type-index
# cache.
#
#   bash scripts/bench-check.sh [RUNS]      (default 5)
#
# Target on the 1 GiB 6.1 kdump (bookworm-kdump/kdump.elf): check <= 2 s.
# On the rootkit dump, check also walks the slabs to count the suspect
# modules' memory. Fixtures come from testdata/vmcores/build.sh; missing
# ones are skipped. Not a test: numbers depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
. scripts/benchlib.sh
DUMPS=(bookworm-kdump:kdump.elf bookworm-kdump:kdump.lzo bookworm-rootkit:qemu1.elf bookworm-slubdbg:qemu1.zlib
	bullseye-kdump:kdump.elf trixie-slubdbg:qemu1.zlib sid-slubdbg:qemu1.zlib)
[[ -x /usr/bin/time ]] || { echo "bench-check: needs GNU time (/usr/bin/time)" >&2; exit 2; }
bin=$(mktemp -d)/vmleak
go build -o "$bin" ./cmd/vmleak
idx=$(mktemp -d)
trap 'rm -rf "$idx" "$(dirname "$bin")"' EXIT

printf '%-18s %-11s %8s %8s %8s %8s\n' fixture file info_s info_MB check_s check_MB
for spec in "${DUMPS[@]}"; do
	name=${spec%%:*} file=${spec#*:}
	d=$FIX/dumps/$name/$file
	if [[ ! -f $d ]]; then
		echo "bench-check: $d missing, skipped" >&2
		continue
	fi
	vmlinux=$(fixture_vmlinux "$name")
	env XDG_CACHE_HOME="$idx" "$bin" check "$d" --vmlinux "$vmlinux" >/dev/null 2>&1 || true # fill the type-index cache
	read -r it im < <(measure env XDG_CACHE_HOME="$idx" "$bin" info "$d" --vmlinux "$vmlinux")
	read -r ct cm < <(measure env XDG_CACHE_HOME="$idx" "$bin" check "$d" --vmlinux "$vmlinux")
	printf '%-18s %-11s %8s %8s %8s %8s\n' "$name" "$file" "$it" "$(mb "$im")" "$ct" "$(mb "$cm")"
done
echo "median of $RUNS runs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
