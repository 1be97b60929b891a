#!/usr/bin/env bash
# make image: builds the kuryr-dpdk image (the binaries of `make build`) and
# the demo workload image (Debian's static busybox: a shell and `ip`) as OCI
# image layout tarballs, without a container engine (hack/image,
# internal/imagebuild; their contents in internal/imagebuild/specs.go).
# Prints each image's digest, name and tarball.
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

# What goes into each image is defined once, in internal/imagebuild
# (specs.go): the all-in-one builds the same images from it.
"$BIN/kuryr-image" -preset kuryr -bin "$BIN" -version "$VERSION" -o "$out/kuryr-dpdk.oci.tar" -name "$IMAGE"
"$BIN/kuryr-image" -preset demo -o "$out/demo.oci.tar" -name "$DEMO_IMAGE"
