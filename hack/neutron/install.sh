#!/usr/bin/env bash
# Installs Debian's neutron-server (and the sqlite3 CLI) for the contract tests
# that run against a real Neutron on 127.0.0.1. Idempotent: when everything is
# installed it only checks and exits in well under a second.
#
# Cold install on the 2-core test machine: see docs/neutron.md ("Timings").
set -euo pipefail

# neutron-server (metapackage: neutron-api + neutron-rpc-server) brings
# neutron-common (/usr/bin/neutron-server, neutron-db-manage, the ml2 plugin and
# the trunk service plugin) and python3-neutron. sqlite3 is the CLI
# internal/neutrontest uses to stand in for an L2 agent (port status).
pkgs=(neutron-server sqlite3)

log() { echo "neutron/install: $*" >&2; }

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	log "already installed: $(dpkg-query -W -f='${Package} ${Version}' neutron-common 2>/dev/null)"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	log "missing Debian packages: ${missing[*]}; run this script as root (it runs apt-get install)"
	exit 1
fi

# Debian's postinst scripts would start neutron-api/neutron-rpc-server as
# system services (on 0.0.0.0:9696). The tests start their own server, so keep
# services from starting during the install with a policy-rc.d that says no,
# unless the machine already has one.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\n# neutron/install.sh: no service starts during install\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
log "missing: ${missing[*]}; apt-get update"
apt-get update -qq
log "apt-get install ${missing[*]} (about 2 minutes cold)"
apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" >/dev/null

# Should a service have started anyway (no policy-rc.d honoured), stop it: it
# would hold port 9696 and a sqlite file under /var/lib/neutron.
for svc in neutron-api neutron-rpc-server; do
	if [[ -x /etc/init.d/$svc ]]; then
		/etc/init.d/"$svc" stop >/dev/null 2>&1 || true
	fi
done

command -v neutron-server >/dev/null || {
	log "installed ${missing[*]} but neutron-server is not on PATH"
	exit 1
}
log "installed $(dpkg-query -W -f='${Package} ${Version}' neutron-common) in $((SECONDS - start))s"
