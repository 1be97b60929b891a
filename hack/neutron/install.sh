#!/usr/bin/env bash
# Installs Debian's neutron-server (and the sqlite3 CLI) for the contract tests
# that run against a real Neutron on 127.0.0.1. Idempotent: when everything is
# installed it only checks and exits in well under a second.
#
# Cold install on the 2-core test machine: see docs/neutron.md ("Timings").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/apt.sh
source "$here/../lib/apt.sh"

# neutron-server (metapackage: neutron-api + neutron-rpc-server) brings
# neutron-common (/usr/bin/neutron-server, neutron-db-manage, the ml2 plugin and
# the trunk service plugin) and python3-neutron. sqlite3 is the CLI
# internal/testing/neutrontest uses to stand in for an L2 agent (port status).
apt_ensure neutron/install neutron-server sqlite3

# Should a service have started anyway (no policy-rc.d honoured), stop it: it
# would hold port 9696 and a sqlite file under /var/lib/neutron.
for svc in neutron-api neutron-rpc-server; do
	if [[ -x /etc/init.d/$svc ]] && /etc/init.d/"$svc" status >/dev/null 2>&1; then
		/etc/init.d/"$svc" stop >/dev/null 2>&1 || true
	fi
done
command -v neutron-server >/dev/null || {
	echo "neutron/install: neutron-server is not on PATH after the install" >&2
	exit 1
}
echo "neutron/install: $(dpkg-query -W -f='${Package} ${Version}' neutron-common 2>/dev/null)" >&2
