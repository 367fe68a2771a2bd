#!/usr/bin/env bash
# Builds, on demand, the big dumps of the performance targets: the 6.1
# kernel at 1, 2 and 4 GiB with 4 CPUs and about two million test objects
# over four caches (dumps.sh's opt-in lines), each twice:
#   - bookworm-big<SIZE>: QEMU's dump-guest-memory ELF (qemu1.elf);
#   - bookworm-kbig<SIZE>: a genuine kdump of the same guest, its capture
#     kernel saving /proc/vmcore as ELF (kdump.elf) and makedumpfile -d 31
#     as lzo and zlib (kdump.lzo, kdump.zlib, and their flattened streams).
# (makedumpfile 1.7 cannot filter QEMU's own dumps: it refuses QEMU's
# paging=false ELF, "Can't get the number of PT_LOAD", and its
# kdump-compressed output, "Can't get the address of system_utsname"; hence
# the kexec capture.)
#
#   bash scripts/bench-bigdumps.sh [SIZE...]     (sizes 1g 2g 4g; default 1g 2g 4g)
#   KINDS="kbig" bash scripts/bench-bigdumps.sh 4g   (only the kdump; default "big kbig")
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
((${#sizes[@]})) || sizes=(1g 2g 4g)
read -r -a kinds <<<"${KINDS:-big kbig}"
mkdir -p "$BIG"
# The kernels once (build.sh kernels waits for the fixture root's lock).
[[ -d $FIX/kernels ]] || bash testdata/vmcores/build.sh kernels >&2
for d in kernels debs chroots; do
	[[ -e $BIG/$d || ! -e $FIX/$d ]] || ln -s "$FIX/$d" "$BIG/$d"
done
for s in "${sizes[@]}"; do
	for k in "${kinds[@]}"; do
		name=bookworm-$k$s
		t0=$SECONDS
		VMLEAK_FIXTURES=$BIG bash testdata/vmcores/build.sh "$name" >&2
		out=$BIG/dumps/$name
		echo "$name: ready in $((SECONDS - t0)) s: $(cd "$out" && ls -s --block-size=M qemu1.elf kdump.elf kdump.lzo kdump.zlib 2>/dev/null | paste -sd' ')" >&2
	done
done
