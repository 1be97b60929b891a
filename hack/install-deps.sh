#!/usr/bin/env bash
# Installs the Debian packages the tests and the all-in-one run need. Quiet and
# quick when they are already there.
set -euo pipefail

pkgs=(iproute2 git make)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
install_more() {
	# The real neutron-server the OpenStack contract tests run against.
	"$here/neutron/install.sh" || [[ $(id -u) -ne 0 ]] # not root: its tests skip loudly
}
if ((${#missing[@]} == 0)); then
	install_more
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "install-deps: missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "install-deps: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_more
