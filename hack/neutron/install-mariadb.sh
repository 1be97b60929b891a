#!/usr/bin/env bash
# Installs what the MariaDB variant of the real-Neutron setup needs on top of
# hack/neutron/install.sh: Debian's MariaDB server (run by start-mariadb.sh as
# a private instance on 127.0.0.1, never the system one) and python3-pymysql
# (neutron's `mysql+pymysql://` driver). Idempotent and quick when installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pkgs=(mariadb-server mariadb-client python3-pymysql)

log() { echo "neutron/install-mariadb: $*" >&2; }

"$here/install.sh"

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	log "already installed: $(dpkg-query -W -f='${Package} ${Version}' mariadb-server 2>/dev/null)"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	log "missing Debian packages: ${missing[*]}; run this script as root (it runs apt-get install)"
	exit 1
fi

# mariadb-server's postinst would start the system instance (on
# /run/mysqld/mysqld.sock and port 3306). The benchmark runs its own, so keep
# services from starting during the install, unless a policy-rc.d exists.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\n# neutron/install-mariadb.sh: no service starts during install\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
log "missing: ${missing[*]}; apt-get update"
apt-get update -qq
log "apt-get install ${missing[*]}"
apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" >/dev/null

# Should the system instance have started anyway, stop it.
if [[ -x /etc/init.d/mariadb ]]; then
	/etc/init.d/mariadb stop >/dev/null 2>&1 || true
fi
command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || {
	log "installed ${missing[*]} but mariadbd is not there"
	exit 1
}
log "installed $(dpkg-query -W -f='${Package} ${Version}' mariadb-server) in $((SECONDS - start))s"
