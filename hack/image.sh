#!/usr/bin/env bash
# make image: builds the kuryr-dpdk image (the binaries of `make build`) and
# the demo workload image (Debian's static busybox: a shell and `ip`) as OCI
# image layout tarballs, without a container engine (hack/image,
# internal/imagebuild). Prints each image's digest, name and tarball.
#
# Same inputs, same digest: the binaries are built with -trimpath and
# CGO_ENABLED=0, and the image has fixed owners, mtimes and creation time.
# The kuryr-dpdk tag does not change with the commit (the manifests name it);
# the digest does, because the binaries carry the version (git describe),
# which is also the label org.opencontainers.image.version.
#
# Environment: BIN (./bin), IMAGE (kuryr-dpdk/kuryr-dpdk:dev), DEMO_IMAGE
# (kuryr-dpdk/demo:dev), VERSION (the version in the binaries), GO (go).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
# shellcheck source=lib/apt.sh
source "$here/lib/apt.sh"

BIN=${BIN:-bin}
IMAGE=${IMAGE:-kuryr-dpdk/kuryr-dpdk:dev}
DEMO_IMAGE=${DEMO_IMAGE:-kuryr-dpdk/demo:dev}
VERSION=${VERSION:-dev}
GO=${GO:-go}
out="$BIN/images"

for b in kuryr-controller kuryr-daemon kuryr-cni kuryrctl; do
	[[ -x $BIN/$b ]] || { echo "image: $BIN/$b missing: run make build" >&2; exit 1; }
done
apt_ensure image busybox-static
CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/kuryr-image" ./hack/image

"$BIN/kuryr-image" -o "$out/kuryr-dpdk.oci.tar" -name "$IMAGE" \
	-file "$BIN/kuryr-controller:/usr/bin/kuryr-controller:0755" \
	-file "$BIN/kuryr-daemon:/usr/bin/kuryr-daemon:0755" \
	-file "$BIN/kuryr-cni:/usr/bin/kuryr-cni:0755" \
	-file "$BIN/kuryrctl:/usr/bin/kuryrctl:0755" \
	-dir /tmp:1777 \
	-env PATH=/usr/bin:/bin \
	-cmd '["/usr/bin/kuryrctl","help"]' \
	-label "org.opencontainers.image.title=kuryr-dpdk" \
	-label "org.opencontainers.image.version=$VERSION" \
	-label "org.opencontainers.image.description=kuryr-controller, kuryr-daemon, kuryr-cni, kuryrctl"

# Every busybox applet (sh, ip, ping, sleep, ...) as a link to /bin/busybox.
links=()
while read -r applet; do
	case $applet in bin/busybox | linuxrc) continue ;; esac
	links+=(-link "/$applet:/bin/busybox")
done < <(/bin/busybox --list-full | sort)
busybox_version="$(dpkg-query -W -f='${Version}' busybox-static)"
"$BIN/kuryr-image" -o "$out/demo.oci.tar" -name "$DEMO_IMAGE" \
	-file /bin/busybox:/bin/busybox:0755 "${links[@]}" \
	-dir /tmp:1777 \
	-env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	-cmd '["/bin/sh"]' \
	-label "org.opencontainers.image.title=kuryr-dpdk demo workload" \
	-label "org.opencontainers.image.description=Debian busybox-static $busybox_version: a shell and ip"
