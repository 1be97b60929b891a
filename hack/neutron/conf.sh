# Sourced by start.sh and start-mariadb.sh.
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
