#!/usr/bin/env bash
# Builds Multus CNI v4.2.3 (gopkg.in/k8snetworkplumbingwg/multus-cni.v4), the
# thin plugin, from the Go module proxy into a cache directory outside the
# repository, keyed by version (docs/multus.md): `multus`, the meta-plugin
# containerd executes, and `thin_entrypoint`, which installs it, its
# configuration and its kubeconfig on a node (the image of
# deploy/third-party/multus). A second run with the cache present only
# checks the binaries and returns in seconds.
#
# Usage: hack/build-multus.sh            # prints the bin directory on the last line
# Env:   KURYR_CACHE (default /var/cache/kuryr-dpdk or ~/.cache/kuryr-dpdk)
set -euo pipefail

MULTUS_VERSION=v4.2.3 # also in hack/tools/multus/go.mod and internal/testing/testenv

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/gobuild.sh
source "$here/lib/gobuild.sh"
bindir="$(kuryr_cache)/multus-${MULTUS_VERSION}"
mkdir -p "$bindir"

# Multus prints this with --version (its release build stamps the same).
ldflags="-s -w -X gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version=${MULTUS_VERSION}"
for b in multus thin_entrypoint; do
	go_build_cached build-multus "$bindir" "$b" "$here/tools/multus" \
		"gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/$b" "$ldflags"
done

echo "$bindir"
