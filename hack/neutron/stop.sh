#!/usr/bin/env bash
# Stops a neutron-server started by hack/neutron/start.sh and removes its
# state dir (config, sqlite DB, log).
#
#   hack/neutron/stop.sh [-d STATE_DIR] [-k]
#
# STATE_DIR defaults as in start.sh ($KURYR_NEUTRON_STATE, else
# /tmp/kuryr-neutron-$KURYR_NEUTRON_PORT or 9696). -k keeps the state dir
# (to read the log after a failure).
set -euo pipefail

log() { echo "neutron/stop: $*" >&2; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stop_args kuryr-neutron "$@"

# start.sh ran neutron-server under setsid: its pid is its process group,
# which holds any worker it forked too.
stop_group "$state/neutron-server.pid" neutron-server 5
drop_state
