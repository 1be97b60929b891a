#!/usr/bin/env bash
# Builds the real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) from the Go module proxy into a cache
# directory outside the repository, keyed by version. A second run with the
# cache present only checks the binaries and returns in seconds.
#
# Usage: hack/build-kube-bins.sh            # prints the bin directory on the last line
# Env:   KURYR_CACHE (default /var/cache/kuryr-dpdk or ~/.cache/kuryr-dpdk)
set -euo pipefail

ETCD_VERSION=v3.6.16
KUBE_VERSION=v1.37.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/gobuild.sh
source "$here/lib/gobuild.sh"
bindir="$(kuryr_cache)/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
mkdir -p "$bindir"

go_build_cached build-kube-bins "$bindir" etcd "$here/tools/etcd" go.etcd.io/etcd/server/v3 "-s -w"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
	go_build_cached build-kube-bins "$bindir" "$b" "$here/tools/kube" "k8s.io/kubernetes/cmd/$b" "$(kube_ldflags "$KUBE_VERSION")"
done

echo "$bindir"
