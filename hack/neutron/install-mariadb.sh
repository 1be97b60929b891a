#!/usr/bin/env bash
# Installs what the MariaDB variant of the real-Neutron setup needs on top of
# hack/neutron/install.sh: Debian's MariaDB server (run by start-mariadb.sh as
# a private instance on 127.0.0.1, never the system one) and python3-pymysql
# (neutron's `mysql+pymysql://` driver). Idempotent and quick when installed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/apt.sh
source "$here/../lib/apt.sh"

"$here/install.sh"
apt_ensure neutron/install-mariadb mariadb-server mariadb-client python3-pymysql

# Should the system instance have started anyway, stop it.
if [[ -x /etc/init.d/mariadb ]] && /etc/init.d/mariadb status >/dev/null 2>&1; then
	/etc/init.d/mariadb stop >/dev/null 2>&1 || true
fi
command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || {
	echo "neutron/install-mariadb: mariadbd is not there after the install" >&2
	exit 1
}
echo "neutron/install-mariadb: $(dpkg-query -W -f='${Package} ${Version}' mariadb-server 2>/dev/null)" >&2
