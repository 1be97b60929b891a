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
cache="${KURYR_CACHE:-}"
if [[ -z "$cache" ]]; then
	if [[ -w /var/cache ]]; then cache=/var/cache/kuryr-dpdk; else cache="$HOME/.cache/kuryr-dpdk"; fi
fi
bindir="$cache/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
mkdir -p "$bindir"

log() { printf '[build-kube-bins %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The version the binaries report (kubectl version, /version) is stamped the way
# the Kubernetes release tooling does; without it they report v0.0.0-master.
kube_ldflags="-s -w"
for v in "k8s.io/component-base/version" "k8s.io/client-go/pkg/version"; do
	kube_ldflags+=" -X $v.gitVersion=${KUBE_VERSION} -X $v.gitMajor=1 -X $v.gitMinor=37"
	kube_ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
done

# build NAME MODULE_DIR PACKAGE LDFLAGS: builds one binary unless it is cached.
build() {
	local name=$1 dir=$2 pkg=$3 ldflags=$4
	if [[ -x "$bindir/$name" ]]; then
		log "$name: cached at $bindir/$name"
		return
	fi
	log "$name: building $pkg (this is slow the first time; progress every 30 s)"
	local start=$SECONDS
	( while sleep 30; do log "$name: still building ($((SECONDS - start)) s)"; done ) &
	local ticker=$!
	# Build into a temporary name so an interrupted build never looks cached.
	if ! (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$bindir/.$name.tmp" "$pkg"); then
		kill "$ticker" 2>/dev/null || true
		log "$name: build failed"
		return 1
	fi
	kill "$ticker" 2>/dev/null || true
	mv "$bindir/.$name.tmp" "$bindir/$name"
	log "$name: built in $((SECONDS - start)) s"
}

build etcd "$here/tools/etcd" go.etcd.io/etcd/server/v3 "-s -w"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
	build "$b" "$here/tools/kube" "k8s.io/kubernetes/cmd/$b" "$kube_ldflags"
done

echo "$bindir"
