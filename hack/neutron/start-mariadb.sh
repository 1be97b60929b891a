#!/usr/bin/env bash
# Starts Debian's neutron-server standalone on 127.0.0.1 on a private MariaDB
# (its own datadir, socket and port in the state dir; never the system
# instance): noauth, fake:// messaging, ml2 (openvswitch mechanism driver, no
# agent), the trunk service plugin, `mysql+pymysql://` and several API
# workers. The schema comes from `neutron-db-manage upgrade heads`, which
# works on MariaDB as is. Prints the endpoint URL as the last line of stdout
# once GET /v2.0/networks answers; progress goes to stderr.
#
#   hack/neutron/start-mariadb.sh [-p PORT] [-d STATE_DIR] [-w API_WORKERS] [-t TIMEOUT]
#
# PORT defaults to $KURYR_NEUTRON_PORT or 9696; MariaDB listens on PORT+10000
# (127.0.0.1 only) and on STATE_DIR/mysql.sock. STATE_DIR defaults to
# $KURYR_NEUTRON_STATE or /tmp/kuryr-neutron-mariadb-PORT and must be absent
# or empty. API_WORKERS ($KURYR_NEUTRON_API_WORKERS, default 2) is Neutron's
# api_workers. hack/neutron/stop-mariadb.sh -d STATE_DIR undoes it all.
#
# The migrated database is cached per neutron version as an SQL dump under
# $KURYR_CACHE/neutron (default /var/cache/kuryr-dpdk/neutron); later starts
# load the dump instead of running the migrations again.
set -euo pipefail

port=${KURYR_NEUTRON_PORT:-9696}
state=${KURYR_NEUTRON_STATE:-}
workers=${KURYR_NEUTRON_API_WORKERS:-2}
timeout=${KURYR_NEUTRON_START_TIMEOUT:-180}
while getopts "p:d:w:t:" opt; do
	case $opt in
	p) port=$OPTARG ;;
	d) state=$OPTARG ;;
	w) workers=$OPTARG ;;
	t) timeout=$OPTARG ;;
	*) echo "usage: $0 [-p PORT] [-d STATE_DIR] [-w API_WORKERS] [-t TIMEOUT_SECONDS]" >&2; exit 2 ;;
	esac
done
state=${state:-/tmp/kuryr-neutron-mariadb-$port}
dbport=$((port + 10000))
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "neutron/start-mariadb: $*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"

for c in neutron-server neutron-db-manage mariadb mariadb-install-db mariadb-dump; do
	if ! command -v "$c" >/dev/null; then
		log "$c is not installed; run hack/neutron/install-mariadb.sh (as root)"
		exit 3
	fi
done
mariadbd=/usr/sbin/mariadbd
[[ -x $mariadbd ]] || { log "$mariadbd missing; run hack/neutron/install-mariadb.sh"; exit 3; }
/usr/bin/python3 -c 'import pymysql' 2>/dev/null || { log "python3-pymysql missing; run hack/neutron/install-mariadb.sh"; exit 3; }
url="http://127.0.0.1:$port"
check_free "$state" "$url" stop-mariadb.sh

mkdir -p "$state/lock" "$state/mysql"
state=$(cd "$state" && pwd)
sock=$state/mysql.sock

# 1. MariaDB: a private instance. --no-defaults keeps /etc/mysql out of it;
# root runs it as root (--user), reachable without password on the socket.
t0=$SECONDS
mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$state/mysql" \
	--auth-root-authentication-method=socket --skip-test-db >"$state/mariadb-install.log" 2>&1 || {
	log "mariadb-install-db failed:"
	cat "$state/mariadb-install.log" >&2
	exit 1
}
setsid "$mariadbd" --no-defaults --user="$(id -un)" --datadir="$state/mysql" \
	--socket="$sock" --port="$dbport" --bind-address=127.0.0.1 --skip-name-resolve \
	--pid-file="$state/mariadb.pid" --log-error="$state/mariadb.err" \
	--max-connections=500 --innodb-buffer-pool-size=256M \
	</dev/null >/dev/null 2>&1 &
echo $! >"$state/mariadb.pgid"
for _ in $(seq 300); do
	mariadb --no-defaults -S "$sock" -e 'SELECT 1' >/dev/null 2>&1 && break
	if ! kill -0 "$(<"$state/mariadb.pgid")" 2>/dev/null; then
		log "mariadbd exited; its log:"
		tail -n 30 "$state/mariadb.err" >&2 || true
		exit 1
	fi
	sleep 0.1
done
mariadb --no-defaults -S "$sock" -e 'SELECT 1' >/dev/null || { log "mariadbd does not answer on $sock"; exit 1; }
pass=kuryr-bench
mariadb --no-defaults -S "$sock" <<SQL
CREATE DATABASE neutron CHARACTER SET utf8mb4;
CREATE USER 'neutron'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON neutron.* TO 'neutron'@'127.0.0.1';
SQL
log "mariadb on 127.0.0.1:$dbport and $sock ready in $((SECONDS - t0))s"
dburl="mysql+pymysql://neutron:$pass@127.0.0.1:$dbport/neutron?charset=utf8"

write_neutron_conf "$state" "$port" "$workers" "$dburl"
conf=(--config-file "$state/neutron.conf" --config-file "$state/ml2_conf.ini")

# 2. Schema: the migrations, or their cached result.
version=$(dpkg-query -W -f='${Version}' python3-neutron)
cache=${KURYR_CACHE:-}
if [[ -z $cache ]]; then
	if [[ -w /var/cache ]]; then cache=/var/cache/kuryr-dpdk; else cache=$HOME/.cache/kuryr-dpdk; fi
fi
dump=$cache/neutron/schema-${version//[^A-Za-z0-9.+-]/_}.mariadb.sql
t1=$SECONDS
if [[ -s $dump ]]; then
	mariadb --no-defaults -S "$sock" neutron <"$dump"
	log "schema loaded from $dump in $((SECONDS - t1))s"
else
	log "neutron-db-manage upgrade heads (first run for neutron $version; cached at $dump)"
	neutron-db-manage "${conf[@]}" upgrade heads >"$state/db-manage.log" 2>&1 || {
		log "neutron-db-manage upgrade heads failed:"
		tail -n 40 "$state/db-manage.log" >&2
		exit 1
	}
	log "migrated in $((SECONDS - t1))s"
	mkdir -p "$(dirname "$dump")"
	tmp=$(mktemp "$dump.XXXXXX")
	mariadb-dump --no-defaults -S "$sock" --single-transaction neutron >"$tmp"
	mv "$tmp" "$dump" # atomic: an interrupted dump is never taken for a cached one
fi

# 3. neutron-server, in its own process group (API workers are forked).
log "neutron-server with $workers API workers"
run_neutron_server "$state" "$url" "$timeout" "$here/stop-mariadb.sh" -d "$state" || exit 1
echo "$url"
