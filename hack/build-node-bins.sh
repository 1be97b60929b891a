#!/usr/bin/env bash
# Builds the real node components the all-in-one runs (docs/all-in-one.md):
# containerd v2.4.2 with containerd-shim-runc-v2 and ctr, crictl (cri-tools
# v1.37.0), the kubelet and kubectl v1.37.2, from the Go module proxy into a
# cache directory outside the repository, keyed by version; runc is Debian's
# (installed with apt-get when missing). A second run with the cache present
# only checks the binaries and returns in seconds.
#
# The kubelet and kubectl come from the same wrapper module as the control
# plane (hack/tools/kube); they are built after hack/build-kube-bins.sh, which
# compiles most of the same packages, so the Go build cache makes them quick.
#
# Usage: hack/build-node-bins.sh            # prints the bin directory on the last line
# Env:   KURYR_CACHE (default /var/cache/kuryr-dpdk or ~/.cache/kuryr-dpdk)
set -euo pipefail

CONTAINERD_VERSION=v2.4.2 # also in hack/tools/containerd/go.mod
CRICTL_VERSION=v1.37.0    # also in hack/tools/crictl/go.mod
KUBE_VERSION=v1.37.2      # also in hack/tools/kube/go.mod

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/gobuild.sh
source "$here/lib/gobuild.sh"
# shellcheck source=lib/apt.sh
source "$here/lib/apt.sh"
bindir="$(kuryr_cache)/node-k8s-${KUBE_VERSION}-containerd-${CONTAINERD_VERSION}-crictl-${CRICTL_VERSION}"
mkdir -p "$bindir"

# runc runs the real nodes' containers; busybox-static is the demo workload
# image's one binary (test/aio builds that image as make image does).
apt_ensure build-node-bins runc busybox-static

cd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
for b in containerd containerd-shim-runc-v2 ctr; do
	go_build_cached build-node-bins "$bindir" "$b" "$here/tools/containerd" \
		"github.com/containerd/containerd/v2/cmd/$b" "$cd_ldflags"
done
go_build_cached build-node-bins "$bindir" crictl "$here/tools/crictl" \
	sigs.k8s.io/cri-tools/cmd/crictl "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}"
for b in kubelet kubectl; do
	go_build_cached build-node-bins "$bindir" "$b" "$here/tools/kube" "k8s.io/kubernetes/cmd/$b" "$(kube_ldflags "$KUBE_VERSION")"
done
ln -sf "$(command -v runc)" "$bindir/runc"

echo "$bindir"
