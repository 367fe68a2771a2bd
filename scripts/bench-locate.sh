#!/usr/bin/env bash
# Wall time and peak RSS of locating the kernel in a memory image by the
# memory scan (kernel/locate_memory.go: no VMCOREINFO, no CPU state),
# median of RUNS runs, warm type-index cache:
#
#   bash scripts/bench-locate.sh [RUNS]      (default 5)
#
# Measured: `vmleak info IMAGE --vmlinux V` (opening the image and the
# vmlinux, the memory scan, reading the randomized bases), beside `vmleak
# info` on the crash dump of the same memory (located from VMCOREINFO: the
# difference is the scan), and `vmleak info IMAGE` without a vmlinux (the
# release read from the banner, a byte-wise scan up to it).
# Images: bookworm-lime's LiME images (512 MiB guest), and a 1 GiB LiME image
# made here from bookworm-kdump's kdump.elf (its PT_LOADs as LiME ranges,
# notes and VMCOREINFO dropped). Target: <= 1 s on the 1 GiB image.
# Fixtures come from testdata/vmcores/build.sh; missing ones are skipped.
# Not a test: numbers depend on the machine and its load.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-5}
. scripts/benchlib.sh
[[ -x /usr/bin/time ]] || { echo "bench-locate: needs GNU time (/usr/bin/time)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/vmleak
go build -o "$bin" ./cmd/vmleak
idx=$tmp/idx

# elf_to_lime ELF OUT: an ELF core's PT_LOADs (by physical address; the
# kernel-text segment of a kdump overlaps RAM and is left out) as LiME ranges.
elf_to_lime() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    h = f.read(64)
    phoff, = struct.unpack_from("<Q", h, 32)
    phnum, = struct.unpack_from("<H", h, 56)
    f.seek(phoff)
    segs = []
    for _ in range(phnum):
        typ, _, off, _, paddr, filesz, _, _ = struct.unpack("<IIQQQQQQ", f.read(56))
        if typ == 1 and filesz:
            segs.append((paddr, paddr + filesz, off))
    segs.sort()
    out, end = [], 0
    for s, e, off in segs:
        if e <= end:
            continue
        if s < end:
            off, s = off + end - s, end
        out.append((s, e, off))
        end = e
    with open(dst, "wb") as o:
        for s, e, off in out:
            o.write(struct.pack("<IIQQQ", 0x4C694D45, 1, s, e - 1, 0))
            f.seek(off)
            left = e - s
            while left:
                b = f.read(min(left, 1 << 22))
                o.write(b)
                left -= len(b)
PY
}

specs=()
for n in bookworm-lime:lime.img bookworm-lime:raw.img; do
	[[ -f $FIX/dumps/${n%%:*}/${n#*:} ]] && specs+=("$n:$FIX/dumps/${n%%:*}/${n#*:}:$FIX/dumps/${n%%:*}/qemu1.zlib")
done
if [[ -f $FIX/dumps/bookworm-kdump/kdump.elf ]]; then
	elf_to_lime "$FIX/dumps/bookworm-kdump/kdump.elf" "$tmp/kdump.lime"
	specs+=("bookworm-kdump:kdump.lime (1 GiB):$tmp/kdump.lime:$FIX/dumps/bookworm-kdump/kdump.elf")
fi
((${#specs[@]})) || { echo "bench-locate: no fixture (build bookworm-lime or bookworm-kdump)" >&2; exit 1; }

printf '%-16s %-18s %8s %8s %8s %8s %12s\n' fixture image MiB scan_s scan_MB dump_s norelease_s
for spec in "${specs[@]}"; do
	IFS=: read -r name file img dump <<<"$spec"
	vmlinux=$(fixture_vmlinux "$name")
	extra=()
	if [[ $file == raw.img ]]; then
		extra=(--raw-ranges "$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
d = [d for d in m["dumps"] if d["file"] == "raw.img"][0]
print(",".join("%x-%x" % (int(r["start"], 16), int(r["end"], 16) - 1) for r in d["ranges"]))' "$FIX/dumps/$name/manifest.json")")
	fi
	env XDG_CACHE_HOME="$idx" "$bin" info "$img" --vmlinux "$vmlinux" "${extra[@]}" >/dev/null # fill the type-index cache
	env XDG_CACHE_HOME="$idx" "$bin" info "$img" --vmlinux "$vmlinux" "${extra[@]}" | grep -q 'located: *memory scan' ||
		{ echo "bench-locate: $img was not located by the memory scan" >&2; exit 1; }
	read -r st sm < <(measure env XDG_CACHE_HOME="$idx" "$bin" info "$img" --vmlinux "$vmlinux" "${extra[@]}")
	read -r dt _ < <(measure env XDG_CACHE_HOME="$idx" "$bin" info "$dump" --vmlinux "$vmlinux")
	read -r nt _ < <(measure env XDG_CACHE_HOME="$idx" "$bin" info "$img" "${extra[@]}")
	printf '%-16s %-18s %8d %8s %8s %8s %12s\n' "$name" "$file" $(($(stat -c %s "$img") >> 20)) "$st" "$(mb "$sm")" "$dt" "$nt"
done
echo "median of $RUNS runs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
