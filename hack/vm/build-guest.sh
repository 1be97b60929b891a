#!/usr/bin/env bash
# Builds the node VM guest for the real-VM tests (test/vm, test/vmpod): Debian's
# cloud kernel and an uncompressed initramfs holding busybox, the kernel modules
# the project needs, dpdk-testpmd with its shared libraries and the virtio PMD,
# Debian's runc (the container runtime a test's containerd calls), and
# hack/vm/init as /init. Nothing is installed on the host but qemu-system-x86,
# busybox-static and cpio: the kernel and DPDK packages are only downloaded
# (apt-get download) and unpacked (dpkg-deb -x).
#
# The result is cached by content: a hash of this script, hack/vm/init, the
# image builder's source (hack/image, internal/imagebuild, go.sum) and the
# versions of every package used. A second run only checks and returns in
# seconds. $KURYR_CACHE/vm/current points to the newest build.
#
# Usage: hack/vm/build-guest.sh     # prints the guest directory on the last line
# Env:   KURYR_CACHE (default /var/cache/kuryr-dpdk or ~/.cache/kuryr-dpdk)
# Output: <dir>/vmlinuz, <dir>/initrd.img, <dir>/kernel-release, <dir>/manifest.txt,
#         <dir>/images/dpdk-testpmd.oci.tar (kuryr-dpdk/dpdk-testpmd:dev)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# The dpdk-testpmd image's name (test/vmpod's testpmdImage).
TESTPMD_IMAGE=kuryr-dpdk/dpdk-testpmd:dev
cache="${KURYR_CACHE:-}"
if [[ -z "$cache" ]]; then
	if [[ -w /var/cache ]]; then cache=/var/cache/kuryr-dpdk; else cache="$HOME/.cache/kuryr-dpdk"; fi
fi

log() { printf '[build-guest %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Kernel modules the node VM needs (with their dependencies from modules.dep);
# veth is for the binding tests run in the guest (a stand-in parent NIC);
# overlay is containerd's snapshotter (test/vmpod).
# Those built into the kernel are skipped; any other missing one is an error.
MODULES=(virtio_pci virtio_net virtio_console uio uio_pci_generic vfio vfio_pci
	vfio_iommu_type1 8021q macvlan veth overlay)
# Loaded by /init at boot (the rest are loaded by whoever needs them).
BOOT_MODULES=(virtio_pci virtio_net virtio_console)
# DPDK drivers put in the EAL plugin directory (loaded by every DPDK app).
PMDS=(librte_bus_pci librte_bus_vdev librte_mempool_ring librte_net_virtio)
# Packages pulled in by dpdk-dev's dependency closure that hold nothing
# testpmd loads: left out to keep the download small.
SKIP_PKGS='^(adduser|cdebconf|debconf|dpkg|install-info|init-system-helpers|lsb-base|passwd|perl.*|lib.*-perl|libperl.*|readline-common|sysvinit-utils|tar|udev|usr-is-merged|usrmerge|libpam.*|libsemanage.*|libnewt.*|libslang.*|libdebian-installer.*|libtextwrap.*|libdb5.3|libgdbm.*)$'

# shellcheck source=../lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
apt_ensure build-guest qemu-system-x86 busybox-static cpio binutils kmod || die "cannot install the host packages"
# The guest's packages are downloaded, not installed: the lists must know them.
if ! apt-cache show --no-all-versions linux-image-cloud-amd64 >/dev/null 2>&1; then
	[[ $(id -u) -eq 0 ]] || die "apt lists do not know linux-image-cloud-amd64; run as root (apt-get update)"
	log "apt-get update"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi

# The kernel package the cloud meta-package points at.
kpkg=$(apt-cache show --no-all-versions linux-image-cloud-amd64 | sed -n 's/^Depends: //p' |
	tr ',' '\n' | sed 's/(.*)//; s/ //g' | grep -E '^linux-image-[0-9].*-cloud-amd64$' | head -n1)
[[ -n "$kpkg" ]] || die "cannot resolve linux-image-cloud-amd64 to a kernel package"

# DPDK: dpdk-dev holds dpdk-testpmd; its Depends name the libraries it links.
# iproute2 brings a full ip(8) (busybox's cannot add vlan or macvlan links);
# runc is the OCI runtime of test/vmpod's containerd, as on the host.
dpdk_deps=$(apt-cache show --no-all-versions dpdk-dev | sed -n 's/^Depends: //p' | tr ',' '\n' |
	sed 's/|.*//; s/(.*)//; s/ //g' | grep -vxE 'libdpdk-dev|python3')
# shellcheck disable=SC2086
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
	--no-replaces --no-enhances $dpdk_deps librte-net-virtio23 librte-mempool-ring23 iproute2 runc |
	grep -E '^[a-z0-9]' | grep -vxE 'libdpdk-dev|python3.*|rdma-core' |
	grep -vE "$SKIP_PKGS" | sort -u)
pkgs="$kpkg
dpdk-dev
iproute2
runc
$pkgs"

# shellcheck disable=SC2086
versions=$(apt-cache show --no-all-versions $pkgs busybox-static | awk '/^Package:/{p=$2} /^Version:/{print p"="$2}' | sort -u)
# The image builder's source is part of the key too (it writes the
# dpdk-testpmd image).
hash=$( {
	cat "${BASH_SOURCE[0]}" "$here/init" "$repo/hack/image/main.go" "$repo/go.sum"
	find "$repo/internal/imagebuild" -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs cat
	echo "$versions"
} | sha256sum | cut -c1-16)
out="$cache/vm/$hash"
if [[ -f "$out/initrd.img" && -f "$out/vmlinuz" && -f "$out/images/dpdk-testpmd.oci.tar" ]]; then
	log "guest cached at $out ($(wc -l <<<"$versions") packages, $kpkg)"
	ln -sfn "$hash" "$cache/vm/current"
	echo "$out"
	exit 0
fi

log "building guest $hash: $kpkg, dpdk-testpmd and $(wc -l <<<"$pkgs") packages"
work=$(mktemp -d "$cache/vm-build.XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/vm-build.XXXXXX"; })
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/pkgroot" "$work/root"
debcache="$cache/vm-debs"
mkdir -p "$debcache"

log "apt-get download (cached in $debcache)"
todo=()
while read -r pv; do
	p=${pv%%=*} v=${pv#*=}
	f=$(compgen -G "$debcache/${p}_${v//:/%3a}_*.deb" | head -n1 || true)
	[[ -n "$f" ]] || todo+=("$pv")
done < <(grep -vE '^busybox-static=' <<<"$versions")
if ((${#todo[@]})); then
	log "downloading ${#todo[@]} packages"
	(cd "$debcache" && apt-get -o APT::Sandbox::User=root download -q "${todo[@]}" >/dev/null)
fi
while read -r pv; do
	p=${pv%%=*} v=${pv#*=}
	f=$(compgen -G "$debcache/${p}_${v//:/%3a}_*.deb" | head -n1) || die "package $pv was not downloaded"
	dpkg-deb -x "$f" "$work/pkgroot"
done < <(grep -vE '^busybox-static=' <<<"$versions")

R="$work/root"
P="$work/pkgroot"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,root,etc/kuryr/init.d,lib64,lib/modules}

log "busybox"
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do
	[[ -e "$R/bin/$a" ]] || ln -s busybox "$R/bin/$a"
done
# The kernel's request_module() runs /sbin/modprobe.
ln -s /bin/busybox "$R/sbin/modprobe"

log "kernel and modules"
kver=${kpkg#linux-image-}
cp "$P/boot/vmlinuz-$kver" "$work/vmlinuz"
kmod="$P/lib/modules/$kver"
[[ -d "$kmod" ]] || die "no /lib/modules/$kver in $kpkg"
depmod -b "$P" "$kver" # the package ships no modules.dep: depmod writes it at install
declare -A want=()
add_mod() { # add_mod NAME: the module and its dependencies, by modules.dep
	local name=${1//-/_} line path dep
	line=$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" <<<"$(sed 's/-/_/g' "$kmod/modules.dep")" | head -n1 || true)
	if [[ -z "$line" ]]; then
		if grep -qE "(^|/)${name}\.ko$" <<<"$(sed 's/-/_/g' "$kmod/modules.builtin")"; then
			log "  $1: built into the kernel"
			return
		fi
		die "kernel module $1 is neither a module nor built in ($kpkg)"
	fi
	# modules.dep lines use the real (possibly dashed) file names: look them up again.
	path=$(awk -F: -v n="$name" '{f=$1; sub(/.*\//,"",f); sub(/\.ko.*/,"",f); gsub(/-/,"_",f); if (f==n) {print; exit}}' "$kmod/modules.dep")
	[[ -n "${want[$name]:-}" ]] && return
	want[$name]="${path%%:*}"
	for dep in ${path#*:}; do
		dep=${dep##*/}
		add_mod "${dep%%.ko*}"
	done
}
for m in "${MODULES[@]}"; do add_mod "$m"; done
mkdir -p "$R/lib/modules/$kver"
for name in "${!want[@]}"; do
	src=${want[$name]}
	dst=${src%.ko*}.ko
	mkdir -p "$R/lib/modules/$kver/$(dirname "$dst")"
	case "$src" in
	*.ko) cp "$kmod/$src" "$R/lib/modules/$kver/$dst" ;;
	*.ko.xz) xz -dc "$kmod/$src" >"$R/lib/modules/$kver/$dst" ;;
	*.ko.zst) zstd -qdc "$kmod/$src" >"$R/lib/modules/$kver/$dst" ;;
	*.ko.gz) gzip -dc "$kmod/$src" >"$R/lib/modules/$kver/$dst" ;;
	esac
done
# A modules.dep restricted to the modules shipped, with decompressed names.
awk -F: 'NR==FNR {keep[$0]=1; next} {f=$1; sub(/\.ko.*/,".ko",f); if (!(f in keep)) next;
	out=f ":"; n=split($2, d, " "); for (i=1;i<=n;i++) {g=d[i]; sub(/\.ko.*/,".ko",g); out=out " " g}; print out}' \
	<(for s in "${want[@]}"; do echo "${s%.ko*}.ko"; done) "$kmod/modules.dep" >"$R/lib/modules/$kver/modules.dep"
cp "$kmod/modules.builtin" "$kmod/modules.order" "$R/lib/modules/$kver/" 2>/dev/null || true
log "  modules: $(printf '%s ' "${!want[@]}")"
: >"$R/etc/kuryr/modules-boot"
for m in "${BOOT_MODULES[@]}"; do
	[[ -n "${want[${m//-/_}]:-}" ]] && echo "$m" >>"$R/etc/kuryr/modules-boot"
done
echo "$kver" >"$work/kernel-release"

log "dpdk-testpmd, iproute2's ip, runc and their shared libraries"
pmddir=$(cd "$P" && compgen -G "usr/lib/x86_64-linux-gnu/dpdk/pmds-*" | head -n1) || die "no DPDK plugin directory in the unpacked packages"
libdirs=("$P/lib/x86_64-linux-gnu" "$P/usr/lib/x86_64-linux-gnu")
declare -A copied=()
copy_path() { # copy_path REL: a file or symlink chain from the package tree into the initramfs
	local rel=$1 target
	[[ -n "${copied[$rel]:-}" ]] && return
	copied[$rel]=1
	mkdir -p "$R/$(dirname "$rel")"
	if [[ -L "$P/$rel" ]]; then
		target=$(readlink "$P/$rel")
		ln -sfn "$target" "$R/$rel"
		case "$target" in
		/*) copy_path "${target#/}" ;;
		*) copy_path "$(dirname "$rel")/$target" ;;
		esac
	else
		cp "$P/$rel" "$R/$rel"
	fi
}
resolve_elf() { # resolve_elf REL: copy the file and, recursively, the libraries it needs
	local rel=$1 so found d
	[[ -n "${copied[$rel]:-}" ]] && return
	copy_path "$rel"
	for so in $(readelf -d "$P/$rel" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		found=
		for d in "${libdirs[@]}"; do
			if [[ -e "$d/$so" ]]; then
				found=${d#"$P"/}/$so
				break
			fi
		done
		[[ -n "$found" ]] || die "$rel needs $so, which no unpacked package holds"
		resolve_elf "$found"
	done
}
resolve_elf usr/bin/dpdk-testpmd
# glibc dlopens libgcc_s for pthread_cancel (testpmd's exit path).
resolve_elf "$(cd "$P" && compgen -G "lib/x86_64-linux-gnu/libgcc_s.so.1" || compgen -G "usr/lib/x86_64-linux-gnu/libgcc_s.so.1")"
mkdir -p "$R/$pmddir"
for d in "${PMDS[@]}"; do
	lib=$(cd "$P" && compgen -G "usr/lib/x86_64-linux-gnu/$d.so.*" | head -n1) || die "no $d in the unpacked DPDK packages"
	resolve_elf "$lib"
	ln -sfn "/$lib" "$R/$pmddir/$d.so"
done
interp=$(readelf -l "$P/usr/bin/dpdk-testpmd" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
ld=$(compgen -G "$P/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" | head -n1) || die "no ld-linux in libc6"
copy_path "${ld#"$P"/}"
mkdir -p "$R/$(dirname "$interp")"
[[ -e "$R/$interp" ]] || ln -sfn /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/$interp"
log "  $(( ${#copied[@]} )) files from the DPDK closure"

# The dpdk-testpmd image (test/vmpod runs it as a pod): the same DPDK closure
# (testpmd, its libraries, the PMDs, the loader) and busybox for a shell,
# built as make image builds the project's images (hack/image).
log "dpdk-testpmd image"
mkdir -p "$work/images"
CGO_ENABLED=0 go -C "$repo" build -trimpath -o "$work/kuryr-image" ./hack/image
img_args=(-file "$R/bin/busybox:/bin/busybox:0755" -link /bin/sh:/bin/busybox -dir /tmp:1777 -dir /var/run:0755)
declare -A in_image=()
for l in "${!copied[@]}" "${interp#/}" $(cd "$R" && compgen -G "$pmddir/*.so"); do
	[[ -z "${in_image[$l]:-}" ]] || continue
	in_image[$l]=1
	if [[ -L "$R/$l" ]]; then
		img_args+=(-link "/$l:$(readlink "$R/$l")")
	else
		img_args+=(-file "$R/$l:/$l:0755")
	fi
done
"$work/kuryr-image" -o "$work/images/dpdk-testpmd.oci.tar" -name "$TESTPMD_IMAGE" "${img_args[@]}" \
	-env PATH=/usr/bin:/bin -env LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu \
	-cmd '["/usr/bin/dpdk-testpmd","--help"]' \
	-label "org.opencontainers.image.title=dpdk-testpmd" \
	-label "org.opencontainers.image.description=Debian $(grep -E '^dpdk-dev=' <<<"$versions"): dpdk-testpmd, its libraries and the PMDs ${PMDS[*]}" >&2

# iproute2's ip replaces busybox's, which cannot create links (vlan, macvlan).
rm -f "$R/bin/ip" "$R/sbin/ip"
resolve_elf bin/ip
ln -s /bin/ip "$R/sbin/ip"
resolve_elf usr/sbin/runc

install -m 0755 "$here/init" "$R/init"

log "initramfs"
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$work/initrd.img"
{
	echo "kernel: $kpkg"
	echo "modules: ${!want[*]}"
	echo "pmds: ${PMDS[*]}"
	echo "packages:"
	echo "$versions"
} >"$work/manifest.txt"

mkdir -p "$cache/vm"
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
mv "$work/vmlinuz" "$work/initrd.img" "$work/kernel-release" "$work/manifest.txt" "$work/images" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
ln -sfn "$hash" "$cache/vm/current"
log "guest built at $out (initrd $(du -h "$out/initrd.img" | cut -f1))"
echo "$out"
