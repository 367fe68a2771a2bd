# shellcheck shell=bash
# The live lab: vmleak, statically built, runs inside a 6.1 guest on
# /proc/kcore (no debuginfo in the guest) and prints what it finds between
# two /proc/slabinfo captures (see live/init). Sourced by build.sh:
#   testdata/vmcores/build.sh live BINARY
# Output: $FIX/live/<suite>/ holding the guest's sections (oracle/) and
# manifest.json, whose "binary_sha256" names the vmleak binary that ran; a
# run for the same binary, init and kernel is reused.

LIVE_SUITE=bookworm
LIVE_MEM=512
LIVE_SMP=2
LIVE_TEST=1000:300:1000:50:3000

run_live() { # binary
	local bin=$1 suite=$LIVE_SUITE rel kdir out key bsum
	[[ -f $bin ]] || die "live: no vmleak binary $bin"
	file -b "$bin" 2>/dev/null | grep -q 'statically linked' || [[ $(ldd "$bin" 2>&1) == *"not a dynamic executable"* ]] ||
		die "live: $bin is not statically linked (build it with CGO_ENABLED=0)"
	rel=${REL[$suite]}
	kdir=$FIX/kernels/$rel
	out=$FIX/live/$suite
	bsum=$(sha256sum "$bin" | cut -c1-64)
	key=$( (echo "$bsum $rel $LIVE_MEM $LIVE_SMP $LIVE_TEST $RECIPE_VERSION" && cat "$HERE/live/init" "$HERE/live.sh" && module_key) | sha256sum | cut -c1-12)
	if [[ -f $out/manifest.json ]] && grep -q "\"key\": \"$key\"" "$out/manifest.json"; then
		log "live: up to date ($out)"
		return
	fi
	log "live: running vmleak in a $suite guest on /proc/kcore"
	local t0=$SECONDS initrd w
	initrd=$(build_initrd "$suite" "$rel" 1) || exit 1
	rm -rf "$out" && mkdir -p "$out/oracle" "$out/work"
	w=$out/work
	# A second archive after the lab's initramfs replaces /init and adds the
	# binary: the kernel unpacks concatenated archives in order.
	local ov
	ov=$(mktemp -d)
	cp "$HERE/live/init" "$ov/init" && chmod +x "$ov/init"
	cp "$bin" "$ov/vmleak" && chmod +x "$ov/vmleak"
	{
		cat "$initrd"
		(cd "$ov" && find . | cpio -o -H newc --quiet | gzip -1)
	} >"$w/initrd.gz"
	rm -rf "$ov"
	local mods
	mods=$(python3 "$HERE/lab.py" modorder "$kdir/modules" isofs 2>/dev/null | awk '{print $1}' | paste -sd,)
	local args margs
	margs=$(machine_args "$LIVE_MEM" "$LIVE_SMP" 0 - "$w") || exit 1
	read -r -a args <<<"$margs"
	args+=(-kernel "$kdir/vmlinuz" -initrd "$w/initrd.gz"
		-append "console=ttyS0 panic=-1 loglevel=1 vmleak.mods=$mods vmleak.test=$LIVE_TEST"
		-serial "file:$w/serial.log")
	qemu-system-x86_64 "${args[@]}" >"$w/qemu.log" 2>&1 &
	local qpid=$!
	python3 "$HERE/lab.py" wait "$w/serial.log" "@@VMLEAK DONE@@" 900 >/dev/null || {
		kill $qpid 2>/dev/null
		die "live: the guest did not finish (see $w/serial.log)"
	}
	wait $qpid || true
	python3 "$HERE/lab.py" split "$w/serial.log" "$out/oracle"
	if grep -q '@@VMLEAK ERROR' "$w/serial.log"; then
		die "live: $(grep -m1 '@@VMLEAK ERROR' "$w/serial.log")"
	fi
	cat >"$out/manifest.json" <<EOJ
{"key": "$key", "binary_sha256": "$bsum", "suite": "$suite", "release": "$rel",
 "guest": {"mem_mib": $LIVE_MEM, "smp": $LIVE_SMP, "test": "$LIVE_TEST"},
 "build_seconds": $((SECONDS - t0))}
EOJ
	rm -rf "$w/initrd.gz"
	log "live: done in $((SECONDS - t0)) s"
}
