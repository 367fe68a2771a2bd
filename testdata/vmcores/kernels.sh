# shellcheck shell=bash
# Kernel resolution, download and extraction for the vmcore lab. Sourced by build.sh.
#
# Each suite's kernel is found through its cloud metapackage. The manifest
# (kernels.lock, committed) pins what was last tested; when Debian has replaced
# that build (security updates remove old versions from the mirror), the
# current one is used instead, the change is reported, and every oracle is
# regenerated because fixtures are keyed by kernel release.

# A suite names a Debian release and, after a dash, a foreign architecture:
# "bookworm" is amd64, "bookworm-arm64" the same release's arm64 packages.
suite_arch() { case $1 in *-arm64) echo arm64 ;; *) echo amd64 ;; esac }
suite_dist() { echo "${1%-arm64}"; }

# apt for suites other than the machine's own, without touching system state.
suite_apt() { # suite cmd args...
	local suite=$1 cmd=$2 arch
	arch=$(suite_arch "$suite")
	shift 2
	if [[ $suite == "$(. /etc/os-release && echo "$VERSION_CODENAME")" ]]; then
		# The machine's own suite: the system's sources include its security updates.
		"$cmd" "$@"
		return
	fi
	local d=$FIX/apt/$suite
	if [[ ! -f $d/sources.list ]]; then
		mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
		local uri
		uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
		[[ -n $uri ]] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
		[[ -n $uri ]] || die "cannot find the Debian mirror URI in /etc/apt"
		echo "deb [arch=$arch] $uri $(suite_dist "$suite") main" >"$d/sources.list"
	fi
	local opts=(-o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
	# A foreign architecture's packages, listed and downloaded but never installed.
	[[ $arch == amd64 ]] || opts+=(-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch")
	"$cmd" "${opts[@]}" "$@"
}

suite_update() { # suite: refresh lists at most once per build
	local stamp=$FIX/apt/$1/updated
	mkdir -p "$FIX/apt/$1"
	if [[ ! -f $stamp || -n $(find "$stamp" -mmin +720 2>/dev/null) || ${FORCE_UPDATE:-} == 1 ]]; then
		log "apt update ($1)"
		suite_apt "$1" apt-get update -qq >/dev/null || die "apt-get update for $1 failed"
		touch "$stamp"
	fi
}

# pkg_field suite pkg[=ver] field
pkg_field() {
	suite_apt "$1" apt-cache show "$2" 2>/dev/null | awk -v f="$3:" '$1==f {sub(/^[^:]*: /,""); print; exit}'
}

# Prints the kernel release the suite's cloud metapackage depends on, e.g. 6.1.0-56-cloud-amd64.
resolve_release() { # suite
	local dep arch
	arch=$(suite_arch "$1")
	dep=$(pkg_field "$1" "linux-image-cloud-$arch" Depends | tr ',' '\n' | grep -o "linux-image-[^ ]*-cloud-$arch" | head -n1)
	[[ -n $dep ]] || die "cannot resolve linux-image-cloud-$arch in $1"
	echo "${dep#linux-image-}"
}

# Chooses the release for a suite: the locked one if its packages are still served, else the current one.
choose_release() { # suite
	local suite=$1 locked
	locked=$(awk -v s="$suite" '$1==s {print $2; exit}' "$HERE/kernels.lock" 2>/dev/null || true)
	if [[ -n $locked ]] && [[ -n $(pkg_field "$suite" "linux-image-$locked-dbg" Version) ]]; then
		echo "$locked"
		return
	fi
	local cur
	cur=$(resolve_release "$suite")
	[[ -n $locked ]] && warn "$suite: locked kernel $locked is gone from the mirror; using $cur (oracles regenerate because fixtures are keyed by release; update kernels.lock)"
	echo "$cur"
}

# The Debian packages that make up one kernel: image (with modules), debuginfo.
kernel_packages() { # suite release
	local suite=$1 rel=$2
	if [[ -n $(pkg_field "$suite" "linux-binary-$rel" Version) ]]; then
		# Since 6.17-ish Debian splits image and modules (sid 7.x).
		echo "linux-binary-$rel linux-modules-$rel linux-image-$rel-dbg"
	elif [[ -n $(pkg_field "$suite" "linux-image-$rel-unsigned" Version) ]]; then
		echo "linux-image-$rel-unsigned linux-image-$rel-dbg"
	else
		echo "linux-image-$rel linux-image-$rel-dbg"
	fi
}

# fetch_kernel suite: downloads and extracts one kernel under $FIX/kernels/<release>.
# Writes $FIX/kernels/<release>/kernel.json with package versions and sha256.
fetch_kernel() {
	local suite=$1 rel kdir pkgs p arch
	arch=$(suite_arch "$suite")
	suite_update "$suite"
	rel=$(choose_release "$suite")
	kdir=$FIX/kernels/$rel
	if [[ -f $kdir/kernel.json && -f $kdir/vmlinux && -f $kdir/vmlinuz ]]; then
		echo "$rel"
		return
	fi
	mkdir -p "$FIX/debs" "$kdir"
	pkgs=$(kernel_packages "$suite" "$rel")
	local entries=()
	for p in $pkgs; do
		local ver deb
		ver=$(pkg_field "$suite" "$p" Version)
		[[ -n $ver ]] || die "$suite: package $p not found"
		deb=$(ls "$FIX/debs/${p}_"*"${ver#*:}"*_"$arch".deb 2>/dev/null | head -n1 || true)
		if [[ -z $deb ]]; then
			log "download $p $ver"
			(cd "$FIX/debs" && suite_apt "$suite" apt-get -o APT::Sandbox::User=root download -qq "$p=$ver" >/dev/null) || die "download of $p failed"
			deb=$(ls "$FIX/debs/${p}_"*_"$arch".deb | head -n1)
		fi
		local sum want
		sum=$(sha256sum "$deb" | cut -d' ' -f1)
		want=$(awk -v p="$p" -v v="$ver" '$3==p && $4==v {print $5}' "$HERE/kernels.lock" 2>/dev/null || true)
		if [[ -n $want && $want != "$sum" ]]; then
			die "$(basename "$deb"): sha256 $sum, kernels.lock says $want"
		fi
		[[ -z $want ]] && warn "$p $ver is not in kernels.lock (sha256 $sum)"
		entries+=("{\"package\":\"$p\",\"version\":\"$ver\",\"sha256\":\"$sum\",\"file\":\"$(basename "$deb")\"}")
		log "extract $(basename "$deb")"
		case $p in
		*-dbg)
			# Only vmlinux and module debuginfo; skip the rest of the tree.
			dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards "./usr/lib/debug/lib/modules/$rel/*" "./usr/lib/debug/boot/*" 2>/dev/null ||
				dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" --wildcards "./usr/lib/debug/*"
			;;
		*) dpkg-deb -x "$deb" "$kdir" ;;
		esac
	done
	local vmlinux
	vmlinux=$(ls "$kdir/usr/lib/debug/lib/modules/$rel/vmlinux" "$kdir/usr/lib/debug/boot/vmlinux-$rel" 2>/dev/null | head -n1)
	[[ -n $vmlinux ]] || die "no vmlinux in the -dbg package of $rel"
	ln -sfn "${vmlinux#"$kdir"/}" "$kdir/vmlinux"
	# The image lives in /boot up to trixie and beside the modules in sid (merged /usr).
	local vmlinuz
	vmlinuz=$(ls "$kdir/boot/vmlinuz-$rel" "$kdir/usr/lib/modules/$rel/vmlinuz" 2>/dev/null | head -n1)
	[[ -n $vmlinuz ]] || die "no vmlinuz for $rel in the image packages"
	ln -sfn "${vmlinuz#"$kdir"/}" "$kdir/vmlinuz"
	local moddir
	moddir=$(ls -d "$kdir/lib/modules/$rel" "$kdir/usr/lib/modules/$rel" 2>/dev/null | head -n1)
	[[ -n $moddir ]] || die "no modules for $rel in the image packages"
	ln -sfn "${moddir#"$kdir"/}" "$kdir/modules"
	local IFS=,
	printf '{"suite":"%s","release":"%s","packages":[%s]}\n' "$suite" "$rel" "${entries[*]}" >"$kdir/kernel.json.tmp"
	mv "$kdir/kernel.json.tmp" "$kdir/kernel.json"
	echo "$rel"
}
