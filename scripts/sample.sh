#!/usr/bin/env bash
# The README's first command: build the sample 6.1 kdump if needed, run vmleak on it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
bash testdata/vmcores/build.sh bookworm-kdump >&2
FIX=${VMLEAK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/vmleak/fixtures}
dump=$FIX/dumps/bookworm-kdump/kdump.elf
# The fixture's kernels are laid out like Debian's -dbg packages, so vmleak finds
# the vmlinux for the dump's release under --debuginfo-dir.
dirs=()
for d in "$FIX"/kernels/*/; do dirs+=(--debuginfo-dir "$d"); done
go build -o vmleak ./cmd/vmleak
for cmd in "${@:-slabs}"; do
	echo "\$ vmleak $cmd $dump" >&2
	./vmleak "$cmd" "$dump" "${dirs[@]}"
done
