#!/usr/bin/env bash
# Installs the Debian packages the tests and the all-in-one run need. Quiet and
# quick when they are already there. Not root: says what is missing; the
# real-Neutron tests then skip loudly (CI runs as root, where they may not).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/apt.sh
source "$here/lib/apt.sh"

apt_ensure install-deps iproute2 git make
# The real neutron-server the OpenStack contract tests run against.
"$here/neutron/install.sh" || [[ $(id -u) -ne 0 ]]
