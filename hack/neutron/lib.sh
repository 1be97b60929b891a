# Sourced by the neutron scripts (start, stop, their MariaDB variants), which
# define log().

# check_free STATE URL STOP_SCRIPT exits 1 unless the state dir STATE is
# absent or empty and nothing answers on URL: a server already runs there
# (STOP_SCRIPT, e.g. stop.sh, stops it) or the port is taken.
check_free() {
	local state=$1 url=$2 stop=$3
	if [[ -d $state ]] && [[ -n $(ls -A "$state") ]]; then
		log "state dir $state is not empty (a server already running there? hack/neutron/$stop -d $state)"
		exit 1
	fi
	if curl -s -o /dev/null --max-time 2 "$url/"; then
		log "something already answers on $url; pick another port (-p)"
		exit 1
	fi
}

# stop_args NAME ARGS... reads a stop script's flags, -d STATE_DIR and -k
# (keep the state dir), into the globals state and keep. The state dir
# defaults to $KURYR_NEUTRON_STATE, else /tmp/NAME-PORT with PORT
# $KURYR_NEUTRON_PORT or 9696.
stop_args() {
	local name=$1 opt OPTIND=1
	shift
	state=${KURYR_NEUTRON_STATE:-}
	keep=0
	while getopts "d:k" opt; do
		case $opt in
		d) state=$OPTARG ;;
		k) keep=1 ;;
		*) echo "usage: $0 [-d STATE_DIR] [-k]" >&2; exit 2 ;;
		esac
	done
	state=${state:-/tmp/$name-${KURYR_NEUTRON_PORT:-9696}}
}

# drop_state removes the state dir unless stop_args read -k.
drop_state() {
	if ((keep == 0)) && [[ -d $state ]]; then
		rm -rf "$state"
	fi
}
#
# write_neutron_conf STATE PORT API_WORKERS DB_URL writes STATE/neutron.conf
# and STATE/ml2_conf.ini for a standalone neutron-server on 127.0.0.1:PORT:
# noauth (requests carry project_id), transport fake:// (no agents, no
# RPC), ml2 with the openvswitch mechanism driver (the trunk plugin needs
# one), the trunk service plugin, tags accepted on port create, and Nova
# notifications off (there is no Nova). rpc_workers = 0 keeps RPC in the API
# process.
write_neutron_conf() {
	local state=$1 port=$2 workers=$3 dburl=$4 pool=""
	if [[ $dburl == mysql* ]]; then
		pool=$'max_pool_size = 10\nmax_overflow = 20'
	fi
	cat >"$state/neutron.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
auth_strategy = noauth
core_plugin = ml2
service_plugins = trunk
transport_url = fake://
state_path = $state
api_paste_config = /etc/neutron/api-paste.ini
api_workers = $workers
rpc_workers = 0
rpc_state_report_workers = 0
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
debug = false
use_stderr = false

[database]
connection = $dburl
$pool

[oslo_concurrency]
lock_path = $state/lock

[oslo_policy]
policy_dirs = /etc/neutron/policy.d
EOF
	cat >"$state/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security,tag_ports_during_bulk_creation

[ml2_type_flat]
flat_networks = *

[ml2_type_vlan]
network_vlan_ranges = physnet1:100:199

[ml2_type_vxlan]
vni_ranges = 1:10000

[securitygroup]
enable_security_group = true
EOF
}

# run_neutron_server STATE URL TIMEOUT STOP_CMD... starts neutron-server on
# STATE's configuration in its own process group (API workers are forked),
# records its pid in STATE/neutron-server.pid and waits until URL answers
# GET /v2.0/networks. When it exits or TIMEOUT seconds pass, it prints the
# log's tail, runs STOP_CMD and fails.
run_neutron_server() {
	local state=$1 url=$2 timeout=$3 pid code t0=$SECONDS
	shift 3
	setsid neutron-server --config-file "$state/neutron.conf" --config-file "$state/ml2_conf.ini" \
		--log-file "$state/neutron-server.log" </dev/null >"$state/neutron-server.out" 2>&1 &
	pid=$!
	echo "$pid" >"$state/neutron-server.pid"
	log "neutron-server pid $pid on $url, log $state/neutron-server.log"
	local deadline=$((SECONDS + timeout))
	until code=$(curl -s -o /dev/null -w '%{http_code}' "$url/v2.0/networks") && [[ $code == 200 ]]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "neutron-server exited before answering; last log lines:"
			tail -n 30 "$state/neutron-server.log" "$state/neutron-server.out" >&2 || true
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "no answer from $url/v2.0/networks after ${timeout}s (last status ${code:-none}); stopping it"
			tail -n 30 "$state/neutron-server.log" >&2 || true
			"$@" || true
			return 1
		fi
		sleep 0.2
	done
	log "ready in $((SECONDS - t0))s"
}

# stop_group PIDFILE NAME SECONDS stops the process group whose leader's pid
# is in PIDFILE (started under setsid): SIGTERM, then SIGKILL after SECONDS.
stop_group() {
	local pidfile=$1 name=$2 secs=$3 pid
	if [[ ! -f $pidfile ]]; then
		log "no $name pid file ($pidfile); nothing to stop"
		return 0
	fi
	pid=$(<"$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq $((secs * 10))); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name pid $pid still running after ${secs}s; SIGKILL"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	log "stopped $name pid $pid"
}
