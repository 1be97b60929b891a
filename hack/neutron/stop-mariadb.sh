#!/usr/bin/env bash
# Stops what hack/neutron/start-mariadb.sh started (neutron-server and its
# workers, then the private mariadbd) and removes the state dir.
#
#   hack/neutron/stop-mariadb.sh [-d STATE_DIR] [-k]
#
# STATE_DIR defaults as in start-mariadb.sh. -k keeps the state dir (logs,
# database files) to look at after a failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { echo "neutron/stop-mariadb: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"
stop_args kuryr-neutron-mariadb "$@"

# neutron-server first (it holds database connections).
"$here/stop.sh" -d "$state" -k

# Then mariadbd, started under setsid: its pid is its process group.
stop_group "$state/mariadb.pgid" mariadbd 15
drop_state
