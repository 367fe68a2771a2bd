#!/usr/bin/env bash
# Builds, on demand, the big dumps of the performance targets: the 6.1
# kernel at 1, 2 and 4 GiB with 4 CPUs and about two million test objects
# over four caches (dumps.sh's opt-in lines bookworm-big1g, -big2g,
# -big4g), as QEMU's ELF. (No -d 31 kdump-compressed copies yet:
# makedumpfile 1.7 refuses QEMU's paging=false ELF, "Can't get the number
# of PT_LOAD", and its kdump-compressed output, "Can't get the address of
# system_utsname"; a genuine kdump capture at these sizes is what is left.)
#
#   bash scripts/bench-bigdumps.sh [SIZE...]     (sizes 1g 2g 4g; default 1g 2g)
#
# Never run by `make test` or build.sh's default set. The dumps go under
# $VMLEAK_BIG_FIXTURES (default: the fixture root's sibling "fixtures-big"),
# which shares the kernels, packages and chroots of the fixture root through
# symlinks, so a long build does not hold the fixture root's lock. QEMU runs
# under TCG: a big dump takes minutes to build (the script prints how long).
# Time them with `bash scripts/bench.sh --big [SIZE...]`.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
BIG=${VMLEAK_BIG_FIXTURES:-$FIX-big}
sizes=("$@")
((${#sizes[@]})) || sizes=(1g 2g)
mkdir -p "$BIG"
# The kernels once (build.sh kernels waits for the fixture root's lock).
[[ -d $FIX/kernels ]] || bash testdata/vmcores/build.sh kernels >&2
for d in kernels debs chroots; do
	[[ -e $BIG/$d || ! -e $FIX/$d ]] || ln -s "$FIX/$d" "$BIG/$d"
done
for s in "${sizes[@]}"; do
	name=bookworm-big$s
	t0=$SECONDS
	VMLEAK_FIXTURES=$BIG bash testdata/vmcores/build.sh "$name" >&2
	out=$BIG/dumps/$name
	echo "$name: ready in $((SECONDS - t0)) s: $(cd "$out" && ls -s --block-size=M qemu1.* | paste -sd' ')" >&2
done
