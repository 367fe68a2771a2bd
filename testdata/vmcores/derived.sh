#!/usr/bin/env bash
# shellcheck shell=bash
# Derived fixtures: dump files made on the host from a lab dump, with no
# guest. Sourced by build.sh, which builds them after the dumps, or run on
# its own once the source dumps exist:
#
#   testdata/vmcores/derived.sh              # every derived fixture (cached)
#   testdata/vmcores/derived.sh NAME...      # those made from the named dumps
#
# Output: $FIX/derived/<source dump>/ with the files and manifest.json. The
# source dump directory is only read. A derived fixture is rebuilt when its
# key changes: the source dump's recipe and file hash, this file, and the
# makedumpfile version.
#
# One line per source: dump name, the file the derived files are made from
# (an unfiltered ELF vmcore), and the file of the same dump that
# makedumpfile -d 31 -l wrote in the guest (what the split dumps and the -E
# ELF must read the same as).
DERIVED='
bookworm-kdump kdump.elf kdump.lzo
'
# makedumpfile splits on --splitblock-size boundaries (KiB; 1 GiB by
# default, which puts the whole of a 1 GiB guest in the first part and
# leaves the others empty): 1 MiB blocks give every part pages.
DERIVED_SPLITBLOCK_KIB=1024
DERIVED_SCRIPT=${BASH_SOURCE[0]}

derived_sources() { awk 'NF {print $1}' <<<"$DERIVED"; }

# derived_key name srcfile -> the cache key of the fixture made from it
derived_key() {
	local m=$FIX/dumps/$1/manifest.json
	{
		python3 -c 'import json,sys
m = json.load(open(sys.argv[1]))
print(m["recipe"], *[d["sha256"] for d in m["dumps"] if d["file"] == sys.argv[2]])' "$m" "$2"
		cat "$DERIVED_SCRIPT"
		makedumpfile -v 2>&1 | head -1
	} | sha256sum | cut -c1-16
}

# build_derived name: the split dumps and the filtered ELF of one source dump.
build_derived() {
	local name=$1 line src ref
	line=$(awk -v n="$name" '$1==n' <<<"$DERIVED")
	[[ -n $line ]] || return 0 # no derived fixture for this dump
	read -r _ src ref <<<"$line"
	local sdir=$FIX/dumps/$name out=$FIX/derived/$name key
	[[ -f $sdir/manifest.json && -f $sdir/$src ]] || die "derived $name: source dump $sdir/$src is not built (build.sh $name)"
	key=$(derived_key "$name" "$src")
	if [[ -f $out/manifest.json ]] && grep -q "\"key\": \"$key\"" "$out/manifest.json"; then
		log "derived $name: up to date"
		return
	fi
	log "derived $name: building from $src"
	local t0=$SECONDS tmp=$out.tmp
	rm -rf "$tmp" && mkdir -p "$tmp"
	local n i parts
	for n in 2 3; do
		parts=()
		for ((i = 1; i <= n; i++)); do parts+=("$tmp/split$n.$i"); done
		makedumpfile --split --splitblock-size "$DERIVED_SPLITBLOCK_KIB" -d 31 -l "$sdir/$src" "${parts[@]}" >>"$tmp/makedumpfile.log" 2>&1 ||
			die "derived $name: makedumpfile --split into $n parts failed (see $tmp/makedumpfile.log)"
	done
	makedumpfile -E -d 31 "$sdir/$src" "$tmp/filtered.elf" >>"$tmp/makedumpfile.log" 2>&1 ||
		die "derived $name: makedumpfile -E failed (see $tmp/makedumpfile.log)"
	# The log is mostly progress bars redrawn with \r: keep its messages.
	tr '\r' '\n' <"$tmp/makedumpfile.log" | grep -v '%\]' | grep . >"$tmp/makedumpfile.messages" || true
	rm -f "$tmp/makedumpfile.log"
	python3 - "$tmp" "$name" "$src" "$ref" "$key" "$((SECONDS - t0))" "$DERIVED_SPLITBLOCK_KIB" <<'EOF'
# The manifest, with each part's pfn range read from its kdump_sub_header
# (makedumpfile's diskdump_mod.h, x86_64 layout: disk_dump_header fields
# from status at 424, block_size at 428; the sub-header in the next block:
# split at 12, start_pfn_64 at 80, end_pfn_64 at 88, max_mapnr_64 at 96).
import hashlib, json, os, re, struct, subprocess, sys

tmp, name, src, ref, key, secs, sbk = sys.argv[1:]

def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()

def kdump_split(p):
    with open(p, "rb") as f:
        b = f.read(1 << 16)
    if b[:8] != b"KDUMP   ":
        raise SystemExit(f"{p}: not kdump-compressed")
    ver = struct.unpack_from("<i", b, 8)[0]
    bs = struct.unpack_from("<i", b, 428)[0]
    split = struct.unpack_from("<i", b, bs + 12)[0]
    start, end, maxmapnr = struct.unpack_from("<QQQ", b, bs + 80)
    if ver < 6 or split != 1:
        raise SystemExit(f"{p}: header version {ver}, split {split}: not a version 6 split file")
    return start, end, maxmapnr

ver = subprocess.run(["makedumpfile", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
files = []
for f in sorted(os.listdir(tmp)):
    p = os.path.join(tmp, f)
    m = re.fullmatch(r"split(\d+)\.(\d+)", f)
    e = {"file": f, "size": os.path.getsize(p), "sha256": sha(p), "dump_level": 31}
    if m:
        start, end, maxmapnr = kdump_split(p)
        e.update(kind="split", set=f"split{m[1]}", parts=int(m[1]), part=int(m[2]),
                 format="kdump", compression="lzo", start_pfn=start, end_pfn=end, max_mapnr=maxmapnr,
                 command=f"makedumpfile --split --splitblock-size {sbk} -d 31 -l {src} split{m[1]}.1 ... split{m[1]}.{m[1]}")
    elif f == "filtered.elf":
        e.update(kind="elf", format="elf", compression="none", command=f"makedumpfile -E -d 31 {src} filtered.elf")
    else:
        continue
    files.append(e)
srcman = json.load(open(os.path.join(os.path.dirname(tmp), "..", "dumps", name, "manifest.json")))
srcsha = [d["sha256"] for d in srcman["dumps"] if d["file"] == src]
man = {"name": name, "source": f"dumps/{name}/{src}", "reference": f"dumps/{name}/{ref}", "key": key,
       "source_recipe": srcman["recipe"], "source_sha256": srcsha[0] if srcsha else "",
       "makedumpfile": ver, "build_seconds": int(secs), "files": files}
with open(os.path.join(tmp, "manifest.json"), "w") as f:
    json.dump(man, f, indent=2, sort_keys=True)
    f.write("\n")
EOF
	rm -rf "$out" && mv "$tmp" "$out"
	log "derived $name: built in $((SECONDS - t0)) s"
}

# derived_main [name...]: every derived fixture, or those of the named dumps.
derived_main() {
	local names=("$@") n
	((${#names[@]})) || mapfile -t names < <(derived_sources)
	for n in "${names[@]}"; do
		build_derived "$n"
	done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
	log() { printf '[vmcores %s] %s\n' "$(date +%T)" "$*" >&2; }
	die() {
		printf '[vmcores] ERROR: %s\n' "$*" >&2
		exit 1
	}
	command -v makedumpfile >/dev/null || die "makedumpfile is not installed (build.sh installs it)"
	mkdir -p "$FIX"
	exec 9>"$FIX/.lock"
	flock 9 || die "cannot lock $FIX"
	derived_main "$@"
fi
