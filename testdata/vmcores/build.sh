#!/usr/bin/env bash
# Builds the real vmcore fixtures vmleak is tested against.
#
#   testdata/vmcores/build.sh            # everything (idempotent; cached)
#   testdata/vmcores/build.sh kernels    # only download and extract kernels
#   testdata/vmcores/build.sh NAME...    # only the named dumps (see dumps.sh)
#   testdata/vmcores/build.sh --list     # names of all dumps
#   testdata/vmcores/build.sh live BIN   # run the static vmleak BIN in a live guest (live.sh)
#
# Output goes to $VMLEAK_FIXTURES (default ${XDG_CACHE_HOME:-~/.cache}/vmleak/fixtures):
#   debs/                 downloaded Debian packages (the download cache)
#   kernels/<release>/    vmlinuz, vmlinux, modules, module debuginfo, kernel.json
#   dumps/<name>/         the dump files, oracle files and manifest.json
#                         (oracle/crash/<dump>.whatis: see lab.py whatis)
#   derived/<name>/       files made on the host from a dump (split dumps,
#                         makedumpfile -E): see derived.sh
# Nothing large is written into the clone. A dump is rebuilt when its recipe
# (the files in this directory) or its kernel changes: see recipe_hash.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
export FIX HERE

log() { printf '[vmcores %s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '[vmcores %s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	printf '[vmcores] ERROR: %s\n' "$*" >&2
	exit 1
}

# shellcheck source=kernels.sh
. "$HERE/kernels.sh"
# shellcheck source=dumps.sh
. "$HERE/dumps.sh"
# shellcheck source=derived.sh
. "$HERE/derived.sh"
# shellcheck source=live.sh
. "$HERE/live.sh"

install_tools() {
	local need=() p
	# package:command pairs; a package is installed only when its command is missing.
	for p in qemu-system-x86:qemu-system-x86_64 qemu-system-arm:qemu-system-aarch64 gcc-aarch64-linux-gnu:aarch64-linux-gnu-gcc \
		busybox-static:busybox cpio:cpio kexec-tools:kexec \
		makedumpfile:makedumpfile crash:crash python3:python3 xz-utils:xz zstd:zstd gcc:gcc make:make clang:clang \
		binutils:addr2line llvm:llvm-addr2line chromium:chromium; do
		command -v "${p#*:}" >/dev/null 2>&1 || need+=("${p%%:*}")
	done
	# busybox-static provides /bin/busybox; a dynamic busybox would not run in the initramfs.
	[[ -f /usr/share/doc/busybox-static/copyright ]] || need+=(busybox-static)
	[[ -f /usr/lib/python3/dist-packages/snappy/__init__.py ]] || need+=(python3-snappy)
	if ((${#need[@]})); then
		log "apt-get install ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

main() {
	if [[ ${1:-} == --list ]]; then
		all_dumps
		return
	fi
	mkdir -p "$FIX"
	# One build at a time per fixture tree (a CI run and a developer's may share it).
	exec 9>"$FIX/.lock"
	flock 9 || die "cannot lock $FIX"
	install_tools
	local t0=$SECONDS
	local names=("$@") suites=(bullseye bookworm trixie sid)
	if [[ ${1:-} == live ]]; then
		declare -gA REL
		REL[$LIVE_SUITE]=$(fetch_kernel "$LIVE_SUITE")
		run_live "${2:?usage: build.sh live BINARY}"
		return
	fi
	if [[ ${1:-} != kernels ]]; then
		((${#names[@]})) || mapfile -t names < <(all_dumps)
		# Only the kernels the requested dumps boot.
		mapfile -t suites < <(for n in "${names[@]}"; do
			scenario "$n" | awk '{print $2}'
		done | sort -u)
		((${#suites[@]})) || die "unknown dump ${names[*]} (see --list)"
	fi
	declare -gA REL
	for suite in "${suites[@]}"; do
		REL[$suite]=$(fetch_kernel "$suite")
		log "kernel $suite: ${REL[$suite]}"
	done
	if [[ ${1:-} == kernels ]]; then
		return
	fi
	for n in "${names[@]}"; do
		build_dump_retry "$n"
	done
	local t1=$SECONDS
	for n in "${names[@]}"; do
		whatis_oracle "$n"
	done
	log "whatis oracles in $((SECONDS - t1)) s"
	t1=$SECONDS
	for n in "${names[@]}"; do
		build_derived "$n"
	done
	log "derived fixtures in $((SECONDS - t1)) s"
	log "all fixtures ready in $((SECONDS - t0)) s under $FIX"
}

main "$@"
