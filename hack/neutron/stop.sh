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

port=${KURYR_NEUTRON_PORT:-9696}
state=${KURYR_NEUTRON_STATE:-}
keep=0
while getopts "d:k" opt; do
	case $opt in
	d) state=$OPTARG ;;
	k) keep=1 ;;
	*) echo "usage: $0 [-d STATE_DIR] [-k]" >&2; exit 2 ;;
	esac
done
state=${state:-/tmp/kuryr-neutron-$port}

log() { echo "neutron/stop: $*" >&2; }

pidfile=$state/neutron-server.pid
if [[ -f $pidfile ]]; then
	pid=$(<"$pidfile")
	# start.sh ran neutron-server under setsid: its pid is its process group,
	# which holds any worker it forked too.
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid still running after 5s; SIGKILL"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	log "stopped neutron-server pid $pid"
else
	log "no pid file in $state; nothing to stop"
fi
if ((keep == 0)) && [[ -d $state ]]; then
	rm -rf "$state"
fi
