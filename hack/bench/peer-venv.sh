#!/usr/bin/env bash
# hack/bench/peer-venv.sh KURYR_K8S_SRC KURYR_LIB_SRC prints the path of a
# Python virtualenv holding kuryr-kubernetes and kuryr-lib installed from the
# two source checkouts the operator gives (openstack/kuryr-kubernetes and
# openstack/kuryr-lib; PyPI is not reachable here and Debian packages no
# kuryr). The venv sees Debian's python3 packages (--system-site-packages):
# the oslo libraries and openstacksdk come with neutron-server; this script
# installs the few Debian packages kuryr needs on top (cotyledon, flask,
# retrying, neutronclient). pip runs with --no-deps --no-index, so nothing is
# downloaded. The venv is cached under $KURYR_PEER_CACHE (default
# /var/cache/kuryr-dpdk/peer), keyed by the two checkouts' commits (or a hash
# of their trees when they are not git checkouts).
set -euo pipefail

log() { echo "peer-venv: $*" >&2; }

if (($# != 2)); then
	echo "usage: $0 KURYR_K8S_SRC KURYR_LIB_SRC" >&2
	exit 2
fi
k8s_src=$(cd "$1" && pwd)
lib_src=$(cd "$2" && pwd)
for d in "$k8s_src/kuryr_kubernetes" "$lib_src/kuryr"; do
	if [[ ! -d $d ]]; then
		log "$d is missing: is $(dirname "$d") the right checkout?"
		exit 1
	fi
done

# version_of DIR: the checkout's commit, else a hash of its Python files.
version_of() {
	if git -C "$1" rev-parse --short=12 HEAD 2>/dev/null; then
		return
	fi
	(cd "$1" && find . \( -name build -o -name '*.egg-info' -o -name .git \) -prune -o \( -name '*.py' -o -name setup.cfg \) -print |
		LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
}

cache=${KURYR_PEER_CACHE:-/var/cache/kuryr-dpdk/peer}
venv=$cache/venv-k8s-$(version_of "$k8s_src")-lib-$(version_of "$lib_src")
if [[ -x $venv/bin/kuryr-k8s-controller ]] && "$venv/bin/python" -c 'import kuryr_kubernetes.controller.service' 2>/dev/null; then
	echo "$venv"
	exit 0
fi

log "Debian packages kuryr needs besides neutron-server's"
missing=()
for p in python3-venv python3-pip neutron-server python3-cotyledon python3-flask python3-retrying python3-neutronclient; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

log "venv $venv on Debian's python3"
rm -rf "$venv"
mkdir -p "$cache"
# Debian's interpreter on purpose: its dist-packages (oslo, openstacksdk) are
# what the venv builds on; another python3 first on PATH would not see them.
/usr/bin/python3 -m venv --system-site-packages "$venv"
# pip builds in the source tree: build from copies, leaving the operator's
# checkouts as they are. pbr takes the version from git metadata, which a
# copy or a tarball export lacks: PBR_VERSION stands in.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for src in "$lib_src" "$k8s_src"; do
	log "pip install $src"
	cp -a "$src" "$work/src"
	rm -rf "$work/src/.git" "$work/src/build"
	PBR_VERSION=0.0.0.dev0 "$venv/bin/pip" install --quiet --no-deps --no-build-isolation --no-index "$work/src" >&2
	rm -rf "$work/src"
done
"$venv/bin/python" -c 'import kuryr_kubernetes.controller.service' >&2
echo "$venv"
