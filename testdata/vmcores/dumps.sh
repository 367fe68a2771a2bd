# shellcheck shell=bash
# The dumps of the vmcore lab and how each is produced. Sourced by build.sh.
#
# One line per dump:
#   name suite producer mem smp test files steps formats fwcfg qemu-extra cmdline-extra
# producer: qemu (dump-guest-memory over QMP at each "dump" step) or kdump
#           (kexec capture kernel saves /proc/vmcore, makedumpfile -d 31 writes
#           flattened lzo and zlib streams; the host rearranges them with -R).
# test:     nobj:leak:leak_size:bss:bss_size for the test module vmleak_test,
#           then optionally +nobj:leak:leak_size for the second module
#           vmleak_peer; "-" for none. The modules are built against each
#           kernel's headers with its suite's gcc (in a chroot for suites other
#           than the machine's: see build_chroot). A third part "+rootkit"
#           also loads the rootkit-like module rootkit/vmleak_rootkit.c (its
#           compile-time defaults are its parameters; machine's suite only)
#           and records its ground truth and crash's view (rootkit_oracle.py).
#           A part "+lime" (the qemu extra "lime" too) loads the test module
#           from vmleak.mods with its compile-time defaults, which must equal
#           the main part, then the two LiME copies of lime/modules, which
#           write the guest's memory to the extra disks (see lime/cut.py);
#           the dump step follows.
# steps:    see guest/init; growslabs:N allocates N whole slabs of test objects.
# suite:    a Debian release; with -arm64, its arm64 kernel booted under
#           qemu-system-aarch64 -M virt -cpu max (kernels.sh suite_arch): the test
#           modules cross-built (build_foreign_modules), no kdump producer, and
#           drgn's per-object census instead of crash as the slab oracle. Such
#           dumps are named *-arm64: the tests tell them apart by name.
# fwcfg:    1 loads qemu_fw_cfg and adds -device vmcoreinfo (VMCOREINFO in QEMU dumps).
# qemu-extra: numa, la57, lime (two raw virtio disks for LiME's images) or "-".
# "-" means empty.
SCENARIOS='
bookworm-kdump   bookworm kdump 1024 2 1000:300:1000:50:3000 2000 kdump                       elf            1 - crashkernel=256M
bookworm-qemu    bookworm qemu  512  2 1000:300:1000:50:3000 2000 dump                        elf,kdump-zlib 1 - -
bookworm-novmci  bookworm qemu  512  2 1000:300:1000:50:3000 2000 dump                        elf            0 - -
bookworm-pair    bookworm qemu  512  1 0:300:1000:50:3000    2000 growslabs:40,dump,growslabs:12,dump kdump-zlib 1 - -
bookworm-slubdbg bookworm qemu  512  2 1000:300:1000:50:3000+200:120:1000 2000 dump           elf,kdump-zlib 1 - slub_debug=U
bookworm-numa    bookworm qemu  1024 4 1000:300:1000:50:3000 2000 dump                        kdump-zlib     1 numa -
bookworm-la57    bookworm qemu  512  2 1000:300:1000:50:3000 2000 dump                        kdump-zlib     1 la57 -
trixie-qemu      trixie   qemu  512  2 -                     3000 dump,files:1000,dump        kdump-zlib     1 - -
sid-qemu         sid      qemu  512  2 -                     3000 dump,files:1000,dump        kdump-zlib     1 - -
trixie-slubdbg   trixie   qemu  512  2 1000:300:1000:50:3000+200:120:1000 2000 dump           kdump-zlib     1 - slub_debug=U
sid-slubdbg      sid      qemu  512  2 1000:300:1000:50:3000+200:120:1000 2000 dump           kdump-zlib     1 - slub_debug=U
bullseye-kdump   bullseye kdump 768  2 1000:300:1000:50:3000 2000 kdump                       elf            1 - crashkernel=256M
bullseye-qemu    bullseye qemu  512  2 1000:300:1000:50:3000+200:120:1000 2000 dump           kdump-zlib     1 - -
bookworm-rootkit bookworm qemu  512  2 1000:300:1000:50:3000+200:120:1000+rootkit 2000 dump   elf,kdump-zlib 1 - slub_debug=U
bookworm-lime    bookworm qemu  256  2 1000:300:1000:50:3000+lime -    dump                        elf,kdump-zlib 1 lime -
bookworm-arm64   bookworm-arm64 qemu 512 2 1000:300:1000:50:3000 2000 dump                   elf,kdump-zlib 1 - -
'

# Opt-in dumps: built only when named (build.sh NAME, or
# scripts/bench-bigdumps.sh), never by build.sh's default set nor listed by
# --list, so the tests and `make test` neither build nor expect them. The
# big dumps are the 6.1 kernel at 1, 2 and 4 GiB with 4 CPUs and about two
# million test objects over four caches (vmleak_test_obj, kmalloc-64,
# vmleak_peer_obj, kmalloc-128), for timing how each tool grows with RAM:
# bookworm-big* as QEMU's ELF, bookworm-kbig* from a genuine kdump of the
# same guest (the capture kernel's /proc/vmcore as ELF, and makedumpfile -d
# 31 lzo and zlib of the same crash; 256 MiB of the RAM is the crashkernel).
OPTIN_SCENARIOS='
bookworm-big1g   bookworm qemu  1024 4 900000:500000:64:50:3000+100000:500000:128 2000 dump elf 1 - -
bookworm-big2g   bookworm qemu  2048 4 900000:500000:64:50:3000+100000:500000:128 2000 dump elf 1 - -
bookworm-big4g   bookworm qemu  4096 4 900000:500000:64:50:3000+100000:500000:128 2000 dump elf 1 - -
bookworm-kbig1g  bookworm kdump 1024 4 900000:500000:64:50:3000+100000:500000:128 2000 kdump elf 1 - crashkernel=256M
bookworm-kbig2g  bookworm kdump 2048 4 900000:500000:64:50:3000+100000:500000:128 2000 kdump elf 1 - crashkernel=256M
bookworm-kbig4g  bookworm kdump 4096 4 900000:500000:64:50:3000+100000:500000:128 2000 kdump elf 1 - crashkernel=256M
'

all_dumps() { awk 'NF {print $1}' <<<"$SCENARIOS"; }

scenario() { # name -> prints the line (default or opt-in)
	awk -v n="$1" '$1==n' <<<"$SCENARIOS$OPTIN_SCENARIOS"
}

# Bump when a change to this file changes what the dumps contain.
RECIPE_VERSION=4

# recipe_hash name release: a dump is rebuilt when anything that shapes it changes.
recipe_hash() {
	{
		scenario "$1"
		echo "$2 $RECIPE_VERSION"
		cat "$HERE/guest/init"
		# Only dumps that load the test modules change with their source.
		[[ $(scenario "$1" | awk '{print $6}') == - ]] || module_key
		# And only dumps that load the rootkit-like module with its source.
		[[ $(scenario "$1" | awk '{print $6}') != *+rootkit ]] || rootkit_key
		# And only dumps that take LiME images with LiME's build and the cut.
		[[ $(scenario "$1" | awk '{print $6}') != *+lime ]] || lime_key
	} | sha256sum | cut -c1-16
}

# module_key: the test modules' source, which keys their builds and the dumps that load them.
module_key() { cat "$HERE"/module/* | sha256sum | cut -c1-12; }

# rootkit_key: the same for the rootkit-like module (rootkit/).
rootkit_key() { cat "$HERE"/rootkit/* | sha256sum | cut -c1-12; }

# lime_key: the same for the LiME modules: lime/ (the pinned package, the
# copies, the host-side cut) and the function that builds them.
lime_key() {
	{
		cat "$HERE"/lime/*
		sed -n '/^build_lime_modules()/,/^}/p' "$HERE/dumps.sh"
	} | sha256sum | cut -c1-12
}

# mirror_uri: the Debian mirror the machine's apt uses.
mirror_uri() {
	local uri
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
	[[ -n $uri ]] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	[[ -n $uri ]] || die "cannot find the Debian mirror URI in /etc/apt"
	echo "$uri"
}

# build_chroot suite release -> a minimal chroot of the suite with its own gcc
# and linux-headers-<release>: a module for a kernel built with gcc 14 or 16
# must be built by that gcc, which the machine's suite does not have.
# Cached under $FIX/chroots; the headers of a new release are added in place.
build_chroot() {
	local suite=$1 rel=$2 d=$FIX/chroots/$1
	if [[ ! -f $d/.vmleak-base ]]; then
		command -v debootstrap >/dev/null || {
			log "apt-get install debootstrap"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
				die "cannot install debootstrap"
		}
		log "debootstrap $suite"
		rm -rf "$d" && mkdir -p "$FIX/chroots"
		debootstrap --variant=minbase "$suite" "$d" "$(mirror_uri)" >"$FIX/chroots/$suite.log" 2>&1 ||
			die "debootstrap $suite failed (see $FIX/chroots/$suite.log)"
		touch "$d/.vmleak-base"
	fi
	if [[ ! -f $d/.vmleak-headers-$rel ]]; then
		log "$suite chroot: linux-headers-$rel"
		local deb deps
		(cd "$d" && chroot "$d" apt-get download -q "linux-headers-$rel") >>"$FIX/chroots/$suite.log" 2>&1 ||
			die "cannot download linux-headers-$rel in the $suite chroot"
		deb=$(ls "$d"/linux-headers-"${rel}"_*.deb)
		# The headers depend on the kernel image, which a module build does not
		# need: install everything else, then the headers without that one.
		deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep -v linux-image | sed 's/(.*)//; s/|.*//; s/ //g' | grep .)
		# shellcheck disable=SC2086 # one word per package
		chroot "$d" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make $deps \
			>>"$FIX/chroots/$suite.log" 2>&1 || die "cannot install the build tools for $rel in the $suite chroot"
		chroot "$d" dpkg --force-depends -i "/$(basename "$deb")" >>"$FIX/chroots/$suite.log" 2>&1 ||
			die "cannot install linux-headers-$rel in the $suite chroot"
		rm -f "$deb"
		touch "$d/.vmleak-headers-$rel"
	fi
	echo "$d"
}

# build_test_modules suite release -> directory holding vmleak_test.ko and
# vmleak_peer.ko (cached per release and source). The machine's own suite
# builds with its gcc and headers; other suites in their chroot.
build_test_modules() {
	local suite=$1 rel=$2 out
	out=$FIX/kernels/$rel/test-modules-$(module_key)
	if [[ ! -f $out/vmleak_test.ko || ! -f $out/vmleak_peer.ko ]]; then
		local b log
		b=$(mktemp -d)
		log=$b/build.log
		if [[ $(suite_arch "$suite") != amd64 ]]; then
			build_foreign_modules "$suite" "$rel" "$b" || exit 1
		elif [[ $suite == "$(. /etc/os-release && echo "$VERSION_CODENAME")" ]]; then
			if [[ ! -d /usr/src/linux-headers-$rel ]]; then
				log "apt-get install linux-headers-$rel"
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$rel" >/dev/null ||
					die "cannot install linux-headers-$rel"
			fi
			cp "$HERE"/module/* "$b/"
			make -s -C "/usr/src/linux-headers-$rel" M="$b" modules >"$log" 2>&1 || {
				cat "$log" >&2
				die "test module build failed for $rel"
			}
		else
			local d
			d=$(build_chroot "$suite" "$rel") || exit 1
			rm -rf "$d/build" && mkdir -p "$d/build"
			cp "$HERE"/module/* "$d/build/"
			# kvcalloc and kvfree moved from linux/mm.h to linux/slab.h in v5.16
			# (8587ca6f3415); where the headers predate that, the modules get mm.h
			# from the command line, so that their source (which keys every dump
			# loading them) stays one for all kernels.
			local kcflags=()
			grep -qs kvfree "$d/usr/src/linux-headers-$rel/include/linux/slab.h" \
				"$d/usr/src/linux-headers-${rel%-cloud-amd64}-common/include/linux/slab.h" ||
				kcflags=("KCFLAGS=-include linux/mm.h")
			# objtool reads its limits from /proc.
			mount -t proc proc "$d/proc" || die "cannot mount /proc in the $suite chroot"
			local rc=0
			chroot "$d" make -s -C "/usr/src/linux-headers-$rel" M=/build "${kcflags[@]}" modules >"$log" 2>&1 || rc=$?
			umount "$d/proc"
			if ((rc)); then
				cat "$log" >&2
				die "test module build failed for $rel in the $suite chroot"
			fi
			cp "$d"/build/*.ko "$b/"
			rm -rf "$d/build"
		fi
		mkdir -p "$out.tmp"
		cp "$b"/vmleak_test.ko "$b"/vmleak_peer.ko "$out.tmp/"
		rm -rf "$out" && mv "$out.tmp" "$out"
		rm -rf "$b"
	fi
	echo "$out"
}

# build_foreign_modules suite release dir: cross-builds the test modules into
# dir for a foreign-architecture kernel of the machine's Debian release: the
# kernel's own linux-headers (extracted, not installed) with the machine's
# linux-kbuild (its fixdep and modpost are host programs; the arm64
# package's are arm64 ones) and the suite's cross gcc (gcc-<N>-<triplet>,
# the compiler the headers name).
build_foreign_modules() {
	local suite=$1 rel=$2 b=$3 arch hdr p ver deb kb
	arch=$(suite_arch "$suite")
	hdr=$FIX/kernels/$rel/headers
	if [[ ! -f $hdr/.done ]]; then
		rm -rf "$hdr" && mkdir -p "$hdr"
		local common
		common=$(pkg_field "$suite" "linux-headers-$rel" Depends | tr ',' '\n' | grep -o 'linux-headers-[^ ]*-common' | head -n1)
		[[ -n $common ]] || die "$suite: linux-headers-$rel names no -common headers"
		for p in "linux-headers-$rel" "$common"; do
			ver=$(pkg_field "$suite" "$p" Version)
			[[ -n $ver ]] || die "$suite: no $p"
			(cd "$FIX/debs" && suite_apt "$suite" apt-get download -qq "$p=$ver" >/dev/null) || die "download of $p failed"
			deb=$(ls "$FIX/debs/${p}_"*"${ver#*:}"*.deb | head -n1)
			dpkg-deb -x "$deb" "$hdr"
		done
		# The headers' Makefile includes the -common tree by absolute path.
		sed -i "s|^include /usr/src/|include $hdr/usr/src/|" "$hdr/usr/src/linux-headers-$rel/Makefile"
		kb=$(readlink "$hdr/usr/src/linux-headers-$rel/scripts") # ../../lib/linux-kbuild-X.Y/scripts
		kb=${kb#../../lib/}
		kb=${kb%/scripts}
		[[ -d /usr/lib/$kb ]] || {
			log "apt-get install $kb"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$kb" >/dev/null || die "cannot install $kb"
		}
		mkdir -p "$hdr/usr/lib" && ln -sfn "/usr/lib/$kb" "$hdr/usr/lib/$kb"
		touch "$hdr/.done"
	fi
	local triplet
	case $arch in
	arm64) triplet=aarch64-linux-gnu ;;
	*) die "no cross compiler known for $arch" ;;
	esac
	command -v "$triplet-gcc" >/dev/null || {
		log "apt-get install gcc-$triplet"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "gcc-$triplet" >/dev/null || die "cannot install gcc-$triplet"
	}
	cp "$HERE"/module/* "$b/"
	make -s -C "$hdr/usr/src/linux-headers-$rel" M="$b" CROSS_COMPILE="$triplet-" modules >"$b/build.log" 2>&1 || {
		cat "$b/build.log" >&2
		die "test module cross-build failed for $rel"
	}
}

# build_rootkit_module suite release -> directory holding vmleak_rootkit.ko
# (cached per release and source). Written for the 6.1 kernel of the
# machine's own suite, and built with its gcc and headers only.
build_rootkit_module() {
	local suite=$1 rel=$2 out
	out=$FIX/kernels/$rel/rootkit-module-$(rootkit_key)
	if [[ ! -f $out/vmleak_rootkit.ko ]]; then
		[[ $suite == "$(. /etc/os-release && echo "$VERSION_CODENAME")" ]] ||
			die "the rootkit module is built for the machine's own suite only, not $suite"
		if [[ ! -d /usr/src/linux-headers-$rel ]]; then
			log "apt-get install linux-headers-$rel"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$rel" >/dev/null ||
				die "cannot install linux-headers-$rel"
		fi
		local b
		b=$(mktemp -d)
		cp "$HERE"/rootkit/* "$b/"
		make -s -C "/usr/src/linux-headers-$rel" M="$b" modules >"$b/build.log" 2>&1 || {
			cat "$b/build.log" >&2
			die "rootkit module build failed for $rel"
		}
		mkdir -p "$out.tmp"
		cp "$b/vmleak_rootkit.ko" "$out.tmp/"
		rm -rf "$out" && mv "$out.tmp" "$out"
		rm -rf "$b"
	fi
	echo "$out"
}

# build_lime_modules suite release -> directory holding one LiME module per
# line of lime/modules (cached per release and key). LiME comes from Debian's
# lime-forensics-dkms source (GPL, used unmodified but for the defaults of
# three module parameters, set with sed: guest/init passes no parameters),
# built with plain kbuild against the headers, like the rootkit module.
build_lime_modules() {
	local suite=$1 rel=$2 out
	out=$FIX/kernels/$rel/lime-modules-$(lime_key)
	local names
	names=$(awk '!/^#/ && NF == 3 && $1 != "package" {print $1}' "$HERE/lime/modules")
	local n ok=1
	for n in $names; do [[ -f $out/$n.ko ]] || ok=0; done
	if ((ok)); then
		echo "$out"
		return
	fi
	[[ $suite == "$(. /etc/os-release && echo "$VERSION_CODENAME")" ]] ||
		die "LiME is built for the machine's own suite only, not $suite"
	if [[ ! -d /usr/src/linux-headers-$rel ]]; then
		log "apt-get install linux-headers-$rel"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$rel" >/dev/null ||
			die "cannot install linux-headers-$rel"
	fi
	local pkg ver deb
	read -r _ pkg ver < <(awk '$1 == "package"' "$HERE/lime/modules")
	deb=$FIX/debs/${pkg}_${ver}_all.deb
	if [[ ! -f $deb ]]; then
		mkdir -p "$FIX/debs"
		log "apt-get download $pkg=$ver"
		(cd "$FIX/debs" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) || die "cannot download $pkg=$ver"
	fi
	local b src path format
	b=$(mktemp -d)
	dpkg-deb -x "$deb" "$b/x" || die "cannot unpack $deb"
	src=$(echo "$b"/x/usr/src/lime-forensics-*)
	[[ -f $src/main.c ]] || die "$deb has no LiME source"
	mkdir -p "$out.tmp"
	while read -r n path format; do
		mkdir -p "$b/$n"
		cp "$src"/*.c "$src"/*.h "$b/$n/"
		# The defaults of path, format and timeout; each sed must hit exactly one line.
		sed -i -e "s|^char \* path = 0;|char * path = \"$path\";|" \
			-e "s|^static char \* format = 0;|static char * format = \"$format\";|" \
			-e "s|^long timeout = 1000;|long timeout = 0;|" "$b/$n/main.c"
		[[ $(grep -c -e "^char \* path = \"$path\";" -e "^static char \* format = \"$format\";" -e '^long timeout = 0;' "$b/$n/main.c") == 3 ]] ||
			die "LiME $ver: main.c no longer has the parameter defaults lime/modules sets"
		printf 'obj-m := %s.o\n%s-y := tcp.o disk.o main.o hash.o deflate.o\n' "$n" "$n" >"$b/$n/Kbuild"
		make -s -C "/usr/src/linux-headers-$rel" M="$b/$n" modules >"$b/$n/build.log" 2>&1 || {
			cat "$b/$n/build.log" >&2
			die "LiME build ($n) failed for $rel"
		}
		cp "$b/$n/$n.ko" "$out.tmp/"
	done < <(awk '!/^#/ && NF == 3 && $1 != "package"' "$HERE/lime/modules")
	rm -rf "$out" && mv "$out.tmp" "$out"
	rm -rf "$b"
	echo "$out"
}

# copy_bin root binary: a dynamically linked binary and its libraries into an initramfs tree.
copy_bin() {
	local root=$1 bin=$2 lib
	mkdir -p "$root$(dirname "$bin")"
	cp -L "$bin" "$root$bin"
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

# foreign_busybox suite -> path of the static busybox of the suite's
# architecture, from its busybox-static package (cached under $FIX/debs).
foreign_busybox() {
	local suite=$1 arch out ver deb
	arch=$(suite_arch "$suite")
	out=$FIX/debs/busybox-$arch
	if [[ ! -x $out ]]; then
		ver=$(pkg_field "$suite" busybox-static Version)
		[[ -n $ver ]] || die "$suite: no busybox-static"
		(cd "$FIX/debs" && suite_apt "$suite" apt-get download -qq "busybox-static=$ver" >/dev/null) || die "download of busybox-static ($arch) failed"
		deb=$(ls "$FIX/debs/busybox-static_"*_"$arch".deb | head -n1)
		dpkg-deb --fsys-tarfile "$deb" | tar -xO ./bin/busybox >"$out.tmp" || die "no bin/busybox in $deb"
		chmod +x "$out.tmp" && mv "$out.tmp" "$out"
	fi
	echo "$out"
}

# build_initrd suite release with_test -> path of the gzip'd initramfs
# with_test: 0 (no test modules), 1 (vmleak_test and vmleak_peer), rootkit
# (those and vmleak_rootkit) or lime (those and the LiME modules).
build_initrd() {
	local suite=$1 rel=$2 with_test=$3 kdir=$FIX/kernels/$2 key out
	key=$( (cat "$HERE/guest/init" "$HERE/lab.py" && echo "$with_test $RECIPE_VERSION" && case $with_test in
		1) module_key ;;
		rootkit) module_key && rootkit_key ;;
		lime) module_key && lime_key ;;
		esac) |
		sha256sum | cut -c1-12)
	out=$kdir/initrd-$key.gz
	[[ -f $out ]] && {
		echo "$out"
		return
	}
	local root
	root=$(mktemp -d)
	mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,mnt,modules,boot}
	if [[ $(suite_arch "$suite") == amd64 ]]; then
		cp /bin/busybox "$root/bin/busybox"
	else
		cp "$(foreign_busybox "$suite")" "$root/bin/busybox" || exit 1
	fi
	cp "$HERE/guest/init" "$root/init"
	chmod +x "$root/init"
	local m p
	while read -r m p; do
		case $p in
		*.xz) xz -dc "$p" >"$root/modules/$m.ko" ;;
		*) cp "$p" "$root/modules/$m.ko" ;;
		esac
	done < <(python3 "$HERE/lab.py" modorder "$kdir/modules" virtio_pci virtio_blk qemu_fw_cfg isofs 2>/dev/null)
	if [[ $with_test != 0 ]]; then
		local tm
		tm=$(build_test_modules "$suite" "$rel") || exit 1
		cp "$tm/vmleak_test.ko" "$tm/vmleak_peer.ko" "$root/modules/" || exit 1
	fi
	if [[ $with_test == rootkit ]]; then
		local rk
		rk=$(build_rootkit_module "$suite" "$rel") || exit 1
		cp "$rk/vmleak_rootkit.ko" "$root/modules/" || exit 1
	fi
	if [[ $with_test == lime ]]; then
		local lm
		lm=$(build_lime_modules "$suite" "$rel") || exit 1
		cp "$lm"/*.ko "$root/modules/" || exit 1
	fi
	# The capture kernel's tools are the host's, so amd64 guests only.
	if [[ $(suite_arch "$suite") == amd64 ]]; then
		copy_bin "$root" "$(command -v makedumpfile)"
		copy_bin "$root" "$(command -v kexec)"
	fi
	# The capture kernel boots this same tree; the first kernel gets it again under /boot.
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.capture"
	cp -L "$kdir/vmlinuz" "$root/boot/vmlinuz"
	cp "$out.capture" "$root/boot/initrd.gz"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$root" "$out.capture"
	echo "$out"
}

# qemu_args scenario-fields... -> the machine part of the QEMU command line
machine_args() { # mem smp fwcfg extra workdir
	local mem=$1 smp=$2 fwcfg=$3 extra=$4 w=${5:-}
	local a=(-accel tcg -m "$mem" -smp "$smp" -display none -monitor none -no-reboot -nodefaults)
	case $extra in
	numa)
		local half=$((mem / 2))
		a+=(-object "memory-backend-ram,id=m0,size=${half}M" -object "memory-backend-ram,id=m1,size=${half}M"
			-numa "node,nodeid=0,cpus=0-$((smp / 2 - 1)),memdev=m0" -numa "node,nodeid=1,cpus=$((smp / 2))-$((smp - 1)),memdev=m1")
		;;
	la57) a+=(-cpu qemu64,+la57) ;;
	lime)
		# LiME's disks, in lime/modules order (vda, vdb: a qemu guest has no
		# other disk), each larger than all RAM plus LiME's headers.
		[[ -n $w ]] || die "qemu extra lime needs the work directory"
		truncate -s $(((mem + 64) * 1024 * 1024)) "$w/lime.disk" "$w/raw.disk"
		a+=(-drive "file=$w/lime.disk,format=raw,if=virtio" -drive "file=$w/raw.disk,format=raw,if=virtio")
		;;
	-) ;;
	*) die "unknown qemu extra $extra" ;;
	esac
	[[ $fwcfg == 1 ]] && a+=(-device vmcoreinfo)
	echo "${a[@]}"
}

# run_crash dumpfile vmlinux outdir: crash's own view of one dump (where crash supports the kernel).
run_crash() {
	local dump=$1 vmlinux=$2 out=$3 base
	base=$(basename "$dump")
	mkdir -p "$out"
	local cmds=$out/$base.cmds
	printf 'kmem -s > %s\nkmem -i > %s\nmod > %s\nsys > %s\nquit\n' \
		"$out/$base.kmem-s" "$out/$base.kmem-i" "$out/$base.mod" "$out/$base.sys" >"$cmds"
	local rc=0
	timeout 600 crash -s "$vmlinux" "$dump" -i "$cmds" </dev/null >"$out/$base.stdout" 2>&1 || rc=$?
	if [[ ! -s $out/$base.kmem-s ]]; then
		# Recorded, not fatal: on kernels crash does not support, this is the oracle.
		rm -f "$out/$base".{kmem-s,kmem-i,mod,sys}
		{
			echo "crash $(crash -v 2>/dev/null | awk '/^crash /{print $2; exit}') could not analyze $base: exit $rc, no kmem -s output"
			cat "$out/$base.stdout"
		} >"$out/$base.error"
	fi
	rm -f "$cmds"
}

# GUEST_CRASHED is build_dump's exit code when QEMU ended before the guest
# said it was ready or done: the guest kernel died (under TCG a 7.x guest
# was seen to take an int3 Oops in enqueue_timer one second into its boot,
# and its next boot to run clean), which build_dump_retry answers by booting
# it again.
GUEST_CRASHED=75

guest_crashed() { # name workdir
	printf '[vmcores] %s: the guest died before it was done: %s\n' "$1" \
		"$(grep -a -m1 -E 'Oops|Kernel panic|BUG:' "$2/serial.log" | tr -d '\r' || echo "no Oops in $2/serial.log")" >&2
	exit $GUEST_CRASHED
}

# build_dump_retry name: build_dump in a subshell, booted up to three times
# when the guest dies on its own; any other failure ends the build at once.
build_dump_retry() {
	local attempt rc
	for attempt in 1 2 3; do
		# Not "(...) || rc=$?": errexit would be off inside the subshell.
		set +e
		(
			set -e
			build_dump "$1"
		)
		rc=$?
		set -e
		((rc != 0)) || return 0
		((rc == GUEST_CRASHED && attempt < 3)) || exit "$rc"
		log "$1: booting the guest again (attempt $((attempt + 1)) of 3)"
	done
}

build_dump() { # name
	local name=$1 line
	line=$(scenario "$name")
	[[ -n $line ]] || die "unknown dump $name (see --list)"
	local _ suite producer mem smp test files steps formats fwcfg extra cmdx
	read -r _ suite producer mem smp test files steps formats fwcfg extra cmdx <<<"$line"
	local rel=${REL[$suite]} kdir out hash arch
	arch=$(suite_arch "$suite")
	[[ $arch == amd64 || ($producer == qemu && $test != *+*) ]] || die "$name: $arch guests take QEMU dumps, with at most the main test module"
	kdir=$FIX/kernels/$rel
	out=$FIX/dumps/$name
	hash=$(recipe_hash "$name" "$rel")
	if [[ -f $out/manifest.json ]] && grep -q "\"recipe\": \"$hash\"" "$out/manifest.json"; then
		log "$name: up to date"
		return
	fi
	log "$name: building ($suite $rel, $producer)"
	local t0=$SECONDS with_test=0
	# test is main[+peer[+rootkit]], split by position.
	# A part after main that names no numbers is a marker (rootkit, lime).
	local tmain="" tpeer="" trk="" parts p
	IFS=+ read -r -a parts <<<"$test"
	tmain=${parts[0]}
	for p in "${parts[@]:1}"; do
		case $p in
		rootkit | lime) [[ -z $trk ]] || die "$name: two markers in $test" && trk=$p ;;
		*:*) [[ -z $tpeer && -z $trk ]] || die "$name: peer part after a marker in $test" && tpeer=$p ;;
		*) die "$name: unknown test part $p" ;;
		esac
	done
	[[ $trk != lime || $extra == lime ]] || die "$name: +lime needs the qemu extra lime"
	[[ $test != - ]] && with_test=1
	[[ -n $trk ]] && with_test=$trk
	rm -rf "$out" && mkdir -p "$out/oracle" "$out/work"
	local initrd
	initrd=$(build_initrd "$suite" "$rel" "$with_test") || exit 1
	local mods
	# isofs is an in-tree module that creates its own cache (isofs_inode_cache,
	# with a constructor, so never merged): module-owned slab state on every kernel.
	mods=$(python3 "$HERE/lab.py" modorder "$kdir/modules" virtio_pci virtio_blk isofs 2>/dev/null | awk '{print $1}' | paste -sd,)
	[[ $fwcfg == 1 ]] && mods="$mods,qemu_fw_cfg"
	# guest/init loads vmleak.mods in order before the test modules.
	[[ $trk == rootkit ]] && mods="$mods,vmleak_rootkit"
	# The test module before LiME, so that it is in the images: loaded from
	# vmleak.mods with its defaults (checked below), and not by vmleak.test.
	[[ $trk == lime ]] && mods="$mods,vmleak_test,$(awk '!/^#/ && NF == 3 && $1 != "package" {print $1}' "$HERE/lime/modules" | paste -sd,)"
	local cmdline="console=ttyS0 panic=-1 loglevel=1 vmleak.mods=$mods vmleak.steps=$steps"
	[[ $test != - && $trk != lime ]] && cmdline+=" vmleak.test=$tmain"
	[[ -n $tpeer ]] && cmdline+=" vmleak.peer=$tpeer"
	[[ $files != - ]] && cmdline+=" vmleak.files=$files"
	[[ $cmdx != - ]] && cmdline+=" $cmdx"
	local w=$out/work
	local args
	local margs
	margs=$(machine_args "$mem" "$smp" "$fwcfg" "$extra" "$w") || exit 1
	read -r -a args <<<"$margs"
	mkfifo "$w/ctl.in" "$w/ctl.out"
	args+=(-kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$cmdline" -qmp "unix:$w/qmp.sock,server=on,wait=off")
	local qemu=qemu-system-x86_64
	if [[ $arch == arm64 ]]; then
		# virt's own UART is a PL011 (ttyAMA0); guest/init talks to ttyS0 and
		# ttyS1, which a PCI 16550 pair provides (8250_pci is built in).
		# pauth-impdef: TCG's QARMA is slow; the PAC bits are there either way.
		qemu=qemu-system-aarch64
		args=(-M virt -cpu max,pauth-impdef=on "${args[@]}" -chardev "file,id=s0,path=$w/serial.log" -chardev "pipe,id=s1,path=$w/ctl"
			-device pci-serial-2x,chardev1=s0,chardev2=s1)
	else
		args+=(-serial "file:$w/serial.log" -serial "pipe:$w/ctl")
	fi
	local dumps_json=()
	if [[ $producer == kdump ]]; then
		truncate -s $(((mem + 128) * 1024 * 1024)) "$w/elf.img"
		truncate -s $((mem * 1024 * 1024)) "$w/flat-lzo.img" "$w/flat-zlib.img"
		args+=(-drive "file=$w/elf.img,format=raw,if=virtio" -drive "file=$w/flat-lzo.img,format=raw,if=virtio"
			-drive "file=$w/flat-zlib.img,format=raw,if=virtio")
	fi
	"$qemu" "${args[@]}" >"$w/qemu.log" 2>&1 &
	local qpid=$!
	if [[ $producer == qemu ]]; then
		local n=0 nd
		nd=$(tr ',' '\n' <<<"$steps" | grep -c '^dump$')
		while ((n < nd)); do
			n=$((n + 1))
			local rc=0
			python3 "$HERE/lab.py" wait "$w/serial.log" "@@VMLEAK (READY $n|ERROR.*)@@" 600 "$qpid" >"$w/wait.out" || rc=$?
			((rc != 3)) || guest_crashed "$name" "$w"
			((rc == 0)) || {
				kill $qpid 2>/dev/null
				die "$name: guest never became ready (see $w/serial.log)"
			}
			grep -q ERROR "$w/wait.out" && {
				kill $qpid 2>/dev/null
				die "$name: guest error: $(cat "$w/wait.out")"
			}
			local cmds=('{"execute":"stop"}')
			for f in ${formats//,/ }; do
				cmds+=("{\"execute\":\"dump-guest-memory\",\"arguments\":{\"paging\":false,\"protocol\":\"file:$w/qemu$n.$f\",\"format\":\"$f\"}}")
			done
			cmds+=('{"execute":"cont"}')
			python3 "$HERE/lab.py" qmp "$w/qmp.sock" "${cmds[@]}" || {
				kill $qpid 2>/dev/null
				die "$name: dump failed"
			}
			echo go >"$w/ctl.in"
			for f in ${formats//,/ }; do
				local pq='"producer":"qemu dump-guest-memory","index":'$n',"oracle":"pre'$n'"'
				if [[ $f == elf ]]; then
					mv "$w/qemu$n.elf" "$out/qemu$n.elf"
					dumps_json+=("{\"file\":\"qemu$n.elf\",$pq,\"format\":\"elf\",\"compression\":\"none\"}")
					continue
				fi
				# QEMU 7.2 writes its kdump format as a flattened stream; keep it, and
				# the kdump-compressed file makedumpfile -R rearranges it into.
				local c=${f#kdump-}
				[[ $(head -c 12 "$w/qemu$n.$f") == makedumpfile ]] || die "$name: QEMU's $f output is not flattened"
				mv "$w/qemu$n.$f" "$out/qemu$n.flat-$c"
				makedumpfile -R "$out/qemu$n.$c" <"$out/qemu$n.flat-$c" >>"$w/rearrange.log" 2>&1 || die "$name: makedumpfile -R failed"
				dumps_json+=("{\"file\":\"qemu$n.flat-$c\",$pq,\"format\":\"flattened\",\"compression\":\"$c\"}"
					"{\"file\":\"qemu$n.$c\",$pq,\"format\":\"kdump\",\"compression\":\"$c\"}")
			done
		done
	fi
	local rc=0
	python3 "$HERE/lab.py" wait "$w/serial.log" "@@VMLEAK DONE@@" 900 "$qpid" >/dev/null || rc=$?
	((rc != 3)) || guest_crashed "$name" "$w"
	((rc == 0)) || {
		kill $qpid 2>/dev/null
		die "$name: guest did not finish (see $w/serial.log)"
	}
	wait $qpid || true
	python3 "$HERE/lab.py" split "$w/serial.log" "$out/oracle"
	if grep -q '@@VMLEAK ERROR' "$w/serial.log"; then
		die "$name: $(grep -m1 '@@VMLEAK ERROR' "$w/serial.log")"
	fi
	if [[ $trk == lime ]]; then
		# The module's defaults are the parameters the manifest states.
		local want got
		want=$(IFS=: read -r a b c d e <<<"$tmain" && printf 'nobj %s\nleak %s\nleak_size %s\nbss %s\nbss_size %s\n' "$a" "$b" "$c" "$d" "$e")
		got=$(grep -v '^allocated ' "$out/oracle/pre1.test-module" | tr -d '\r')
		[[ $got == "$want" ]] || die "$name: vmleak_test loaded with $(echo $got), not $tmain"
		# LiME writes no length anywhere: the lime image ends after its last
		# range, and the raw one holds the same ranges (one iomem, read twice).
		local ranges
		ranges=$(python3 "$HERE/lime/cut.py" lime "$w/lime.disk" "$out/lime.img") || die "$name: no LiME image on the lime disk"
		python3 "$HERE/lime/cut.py" raw "$w/raw.disk" "$out/raw.img" "$ranges" || die "$name: no raw image on the raw disk"
		local pl='"producer":"LiME 1.9.1 (lime-forensics-dkms) to a virtio disk","index":1,"oracle":"pre1","compression":"none"'
		dumps_json+=("{\"file\":\"lime.img\",$pl,\"format\":\"lime\"}"
			"{\"file\":\"raw.img\",$pl,\"format\":\"raw\",\"ranges\":$ranges}")
	fi
	if [[ $producer == kdump ]]; then
		local elf_size lzo_size zlib_size
		elf_size=$(sed -n 's/.*@@VMLEAK ELF \([0-9]*\)@@.*/\1/p' "$w/serial.log" | tr -d '\r')
		lzo_size=$(sed -n 's/.*@@VMLEAK FLAT-lzo \([0-9]*\)@@.*/\1/p' "$w/serial.log" | tr -d '\r')
		zlib_size=$(sed -n 's/.*@@VMLEAK FLAT-zlib \([0-9]*\)@@.*/\1/p' "$w/serial.log" | tr -d '\r')
		[[ -n $elf_size && -n $lzo_size && -n $zlib_size ]] || die "$name: capture kernel did not save the dump (see $w/serial.log)"
		head -c "$elf_size" "$w/elf.img" >"$out/kdump.elf"
		head -c "$lzo_size" "$w/flat-lzo.img" >"$out/kdump.flat-lzo"
		head -c "$zlib_size" "$w/flat-zlib.img" >"$out/kdump.flat-zlib"
		makedumpfile -R "$out/kdump.lzo" <"$out/kdump.flat-lzo" >"$w/rearrange.log" 2>&1 || die "$name: makedumpfile -R failed"
		makedumpfile -R "$out/kdump.zlib" <"$out/kdump.flat-zlib" >>"$w/rearrange.log" 2>&1 || die "$name: makedumpfile -R failed"
		local p='"producer":"kdump /proc/vmcore","index":1,"oracle":"pre1"'
		dumps_json+=("{\"file\":\"kdump.elf\",$p,\"format\":\"elf\",\"compression\":\"none\"}"
			"{\"file\":\"kdump.flat-lzo\",$p,\"format\":\"flattened\",\"compression\":\"lzo\",\"dump_level\":31}"
			"{\"file\":\"kdump.lzo\",$p,\"format\":\"kdump\",\"compression\":\"lzo\",\"dump_level\":31}"
			"{\"file\":\"kdump.flat-zlib\",$p,\"format\":\"flattened\",\"compression\":\"zlib\",\"dump_level\":31}"
			"{\"file\":\"kdump.zlib\",$p,\"format\":\"kdump\",\"compression\":\"zlib\",\"dump_level\":31}")
	fi
	# crash's view of every non-flattened dump; crash 8.0 supports the 6.1 kernel only,
	# and its failure on newer kernels is recorded as that kernel's oracle.
	local f
	for f in "$out"/kdump.* "$out"/qemu*; do
		[[ -f $f && $f != *.flat-* && $arch == amd64 ]] || continue
		log "$name: crash on $(basename "$f")"
		run_crash "$f" "$kdir/vmlinux" "$out/oracle/crash"
	done
	if [[ $arch != amd64 ]]; then
		# crash 8.0 as Debian builds it reads x86_64 only: drgn's per-object
		# census is the slab oracle.
		drgn_oracle "$out" "$kdir/vmlinux"
	fi
	local testjson=null peerjson=null rootkitjson=null
	if [[ $trk == rootkit ]]; then
		# The module's own account of what it did, from the kernel log in the
		# dump, checked against crash's view (oracle/crash/qemu1.elf.rootkit).
		[[ -f $out/qemu1.elf ]] || die "$name: the rootkit oracle reads qemu1.elf; add elf to the formats"
		log "$name: rootkit oracle"
		rootkitjson=$(python3 "$HERE/rootkit_oracle.py" "$out/qemu1.elf" "$kdir/vmlinux" "$out/oracle/crash") ||
			die "$name: rootkit oracle failed"
	fi
	if [[ $test != - ]]; then
		local nobj leak leak_size bss bss_size
		IFS=: read -r nobj leak leak_size bss bss_size <<<"$tmain"
		# leak_site and bss_site: the module's functions that allocate them.
		testjson="{\"module\":\"vmleak_test\",\"cache\":\"vmleak_test_obj\",\"nobj\":$nobj,\"leak\":$leak,\"leak_size\":$leak_size,\"bss\":$bss,\"bss_size\":$bss_size,\"allocated_oracle\":\"test-module\",\"leak_site\":\"vmleak_test_leak\",\"bss_site\":\"vmleak_test_fill_bss\"}"
	fi
	if [[ -n $tpeer ]]; then
		local nobj leak leak_size
		IFS=: read -r nobj leak leak_size <<<"$tpeer"
		peerjson="{\"module\":\"vmleak_peer\",\"cache\":\"vmleak_peer_obj\",\"nobj\":$nobj,\"leak\":$leak,\"leak_size\":$leak_size,\"bss\":0,\"bss_size\":0,\"allocated_oracle\":\"peer-module\",\"leak_site\":\"vmleak_peer_leak\"}"
	fi
	local IFS=,
	local json
	json=$(
		cat <<EOF
{"name":"$name","recipe":"$hash","suite":"$suite","kernel_release":"$rel",
 "kernel":"kernels/$rel/kernel.json","vmlinux":"kernels/$rel/vmlinux","debuginfo_dir":"kernels/$rel/usr/lib/debug/lib/modules/$rel",
 "producer":"$producer","arch":"$arch","guest":{"mem_mib":$mem,"smp":$smp,"machine":"$extra","fw_cfg":$([[ $fwcfg == 1 ]] && echo true || echo false),"cmdline":"$cmdline"},
 "steps":"$steps","tmpfs_files":$([[ $files == - ]] && echo 0 || echo "$files"),"test_module":$testjson,"peer_module":$peerjson,"rootkit":$rootkitjson,
 "dumps":[${dumps_json[*]}],"build_seconds":$((SECONDS - t0))}
EOF
	)
	unset IFS
	rm -rf "$w"
	python3 "$HERE/lab.py" manifest "$out" "$json"
	log "$name: done in $((SECONDS - t0)) s"
}

# whatis_oracle name: crash's answers for addresses of every kind, from one
# non-flattened dump of the fixture (lab.py whatis). Cached by its own key, so
# changing it never rebuilds a dump; skipped where crash cannot read the kernel.
whatis_oracle() {
	local name=$1 suite
	suite=$(scenario "$name" | awk '{print $2}')
	[[ $(suite_arch "$suite") == amd64 ]] || return 0 # crash reads x86_64 only
	python3 "$HERE/lab.py" whatis "$FIX/dumps/$name" "$FIX/kernels/${REL[$suite]}/vmlinux" ||
		die "$name: whatis oracle failed"
}

# drgn_oracle dumpdir vmlinux: drgn 0.3.0's per-object walk of every slab
# cache (slab_cache_for_each_allocated_object, the oracle crash is on x86),
# for each non-flattened dump, to oracle/drgn/<dump>.slabs: "name allocated"
# per cache. drgn runs in the lab's sid chroot (build_chroot), where
# python3-drgn is installed once; it reads arm64 dumps on an x86_64 host.
drgn_oracle() {
	local out=$1 vmlinux=$2 ch mnt f
	ch=$(build_chroot sid "$(awk '$1=="sid" {print $2; exit}' "$HERE/kernels.lock")") || exit 1
	chroot "$ch" drgn --version >/dev/null 2>&1 ||
		chroot "$ch" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-drgn >/dev/null ||
		die "cannot install python3-drgn in the sid chroot"
	mnt=$(mktemp -d "$ch/tmp/vmleak-drgn.XXXXXX")
	mkdir -p "$mnt/dump" "$mnt/vmlinux" "$out/oracle/drgn"
	mount --bind -o ro "$out" "$mnt/dump" && mount --bind -o ro "$(dirname "$(readlink -f "$vmlinux")")" "$mnt/vmlinux" ||
		die "cannot bind-mount into the sid chroot"
	# slab_cache_for_each_allocated_object scans every struct page once per
	# cache (16 minutes of Python for the arm64 guest's 155 caches). This
	# runs the same drgn 0.3.0 code, its SLUB helper's per-slab walk and its
	# CPU and sheaf free sets, in one scan of the pages; a drgn without those
	# internals gets the public per-cache walk. On bookworm-qemu both give
	# the same counts for every cache (1 s against minutes).
	cat >"$mnt/slabs.py" <<'PY'
from drgn import FaultError, cast
from drgn.helpers.linux.mm import for_each_page
from drgn.helpers.linux.slab import for_each_slab_cache, slab_cache_for_each_allocated_object
from drgn.helpers.linux import slab as _slab

caches = list(for_each_slab_cache(prog))
try:
    helpers = {}
    for s in caches:
        h = _slab._get_slab_cache_helper(s)
        # What for_each_allocated_object sets up before its scan.
        h._cache_free_objects = h._sheaves_full_objects() | h._per_cpu_info().free_objects
        helpers[s.value_()] = h
    slab_type = _slab._get_slab_type(prog)
    PageSlab = _slab._get_PageSlab_impl(prog)
    for h in helpers.values():
        h._page_objects  # probed here, so a drgn without it falls back before the scan
except AttributeError:
    helpers = None
if helpers is None:
    for s in caches:
        print(s.name.string_().decode(), sum(1 for _ in slab_cache_for_each_allocated_object(s, "void")))
else:
    counts = dict.fromkeys(helpers, 0)
    pointer_type = prog.pointer_type(prog.type("void"))
    for page in for_each_page(prog):
        try:
            if not PageSlab(page):
                continue
        except FaultError:
            continue
        slab = cast(slab_type, page)
        cache = slab.slab_cache.value_()
        if cache in helpers:
            counts[cache] += sum(1 for _ in helpers[cache]._page_objects(page, slab, pointer_type))
    for s in caches:
        print(s.name.string_().decode(), counts[s.value_()])
PY
	local rel=${mnt#"$ch"} rc t0 b ok=0
	for f in "$out"/qemu*; do
		[[ -f $f && $f != *.flat-* ]] || continue
		b=$(basename "$f") rc=0 t0=$SECONDS
		log "$(basename "$out"): drgn on $b"
		nice -n 5 timeout 3600 chroot "$ch" drgn -q -c "$rel/dump/$b" -s "$rel/vmlinux/$(basename "$(readlink -f "$vmlinux")")" "$rel/slabs.py" \
			>"$out/oracle/drgn/$b.slabs" 2>"$out/oracle/drgn/$b.stderr" || rc=$?
		log "$(basename "$out"): drgn on $b: exit $rc in $((SECONDS - t0)) s"
		if ((rc == 0)); then
			ok=1
			rm -f "$out/oracle/drgn/$b.stderr"
		else
			# Recorded, not fatal, like crash's failures: drgn's libkdumpfile
			# refuses QEMU's arm64 kdump files (utsname.machine "Unknown").
			# Every dump of one index holds the same memory, so one census serves.
			rm -f "$out/oracle/drgn/$b.slabs"
			mv "$out/oracle/drgn/$b.stderr" "$out/oracle/drgn/$b.error"
		fi
	done
	umount "$mnt/dump" "$mnt/vmlinux"
	rm -rf "$mnt"
	((ok)) || die "drgn read none of the dumps of $out (see $out/oracle/drgn)"
}
