#!/usr/bin/env bash
# Starts Debian's neutron-server standalone on 127.0.0.1 for contract tests:
# noauth, sqlite, fake:// messaging, ml2 (openvswitch mechanism driver, no
# agent) and the trunk service plugin. Prints the endpoint URL as the last
# line of stdout once GET /v2.0/networks answers; progress goes to stderr.
#
#   hack/neutron/start.sh [-p PORT] [-d STATE_DIR] [-t TIMEOUT_SECONDS]
#
# PORT defaults to $KURYR_NEUTRON_PORT or 9696. STATE_DIR (config, sqlite DB,
# log, pid file) defaults to $KURYR_NEUTRON_STATE or /tmp/kuryr-neutron-PORT;
# it must not exist or be empty. TIMEOUT ($KURYR_NEUTRON_START_TIMEOUT, 120)
# bounds the wait for the API. hack/neutron/stop.sh -d STATE_DIR undoes it.
#
# The sqlite schema is built once per installed neutron version (from the
# models, then `neutron-db-manage stamp heads`: `upgrade` fails on sqlite) and
# cached under $KURYR_CACHE/neutron (default /var/cache/kuryr-dpdk/neutron);
# later starts copy the cached file.
set -euo pipefail

port=${KURYR_NEUTRON_PORT:-9696}
state=${KURYR_NEUTRON_STATE:-}
timeout=${KURYR_NEUTRON_START_TIMEOUT:-120}
while getopts "p:d:t:" opt; do
	case $opt in
	p) port=$OPTARG ;;
	d) state=$OPTARG ;;
	t) timeout=$OPTARG ;;
	*) echo "usage: $0 [-p PORT] [-d STATE_DIR] [-t TIMEOUT_SECONDS]" >&2; exit 2 ;;
	esac
done
state=${state:-/tmp/kuryr-neutron-$port}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3 # Debian's python: neutron lives in its dist-packages

log() { echo "neutron/start: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"

if ! command -v neutron-server >/dev/null || ! command -v sqlite3 >/dev/null; then
	log "neutron-server is not installed; run hack/neutron/install.sh (as root)"
	exit 3
fi
url="http://127.0.0.1:$port"
check_free "$state" "$url" stop.sh

mkdir -p "$state/lock"
state=$(cd "$state" && pwd)

version=$(dpkg-query -W -f='${Version}' python3-neutron)
cache=${KURYR_CACHE:-}
if [[ -z $cache ]]; then
	if [[ -w /var/cache ]]; then cache=/var/cache/kuryr-dpdk; else cache=$HOME/.cache/kuryr-dpdk; fi
fi
schema=$cache/neutron/schema-${version//[^A-Za-z0-9.+-]/_}.sqlite

# Configuration. api_workers = 0 keeps everything in one process (one sqlite
# writer).
write_neutron_conf "$state" "$port" 0 "sqlite:///$state/neutron.sqlite"
conf=(--config-file "$state/neutron.conf" --config-file "$state/ml2_conf.ini")

t0=$SECONDS
if [[ ! -s $schema ]]; then
	log "building the sqlite schema for neutron $version (cached at $schema)"
	mkdir -p "$(dirname "$schema")"
	tmp=$(mktemp "$schema.XXXXXX")
	rm -f "$tmp"
	"$py" "$here/create_schema.py" "sqlite:///$tmp"
	neutron-db-manage --config-file "$state/neutron.conf" \
		--database-connection "sqlite:///$tmp" stamp heads >"$state/db-manage.log" 2>&1 || {
		log "neutron-db-manage stamp heads failed:"
		cat "$state/db-manage.log" >&2
		rm -f "$tmp"
		exit 1
	}
	mv "$tmp" "$schema" # atomic: an interrupted build is never taken for a cached one
	log "schema built in $((SECONDS - t0))s"
fi
cp "$schema" "$state/neutron.sqlite"

run_neutron_server "$state" "$url" "$timeout" "$here/stop.sh" -d "$state" || exit 1
echo "$url"
