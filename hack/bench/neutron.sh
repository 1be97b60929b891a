#!/usr/bin/env bash
# make bench-neutron: kuryr-controller alone against a real Debian
# neutron-server on MariaDB (127.0.0.1), the nested-vlan path. Installs what
# is missing (hack/neutron/install-mariadb.sh, hack/build-kube-bins.sh),
# builds the controller, starts Neutron, runs test/bench/cmd/bench-neutron
# for N = 1, 10, 50, prints the table, and stops and removes everything it
# started, whatever happens.
#
# Environment: KURYR_BENCH_COUNTS (default 1,10,50), KURYR_NEUTRON_API_WORKERS
# (default 2), KURYR_BENCH_PORT (Neutron's port, default 19797; MariaDB takes
# port+10000), KURYR_BENCH_OUT (default results/<UTC timestamp>-neutron),
# KURYR_BENCH_CONTROLLER_ARGS (extra kuryr-controller flags, e.g. "--workers 4"),
# KURYR_BENCH_OURS_POOLED_ARGS (flags that turn the controller's pools on, e.g.
# "--pool-nested-vlan-min=10 --pool-nested-vlan-max=60 --pool-nested-vlan-batch=50":
# the controller runs again with them, after its unpooled run),
# KURYR_BENCH_ARGS (extra bench-neutron flags, shell-quoted; hack/bench/peer.sh
# passes the kuryr-kubernetes comparison's here).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
counts=${KURYR_BENCH_COUNTS:-1,10,50}
workers=${KURYR_NEUTRON_API_WORKERS:-2}
port=${KURYR_BENCH_PORT:-19797}
out=${KURYR_BENCH_OUT:-results/$(date -u +%Y%m%dT%H%M%SZ)-neutron}
GO=${GO:-go}

log() { echo "bench-neutron: $*" >&2; }

log "1/5 packages: mariadb-server, python3-pymysql, neutron-server"
hack/neutron/install-mariadb.sh
log "2/5 kube-apiserver and etcd (cached after the first build)"
assets=$(hack/build-kube-bins.sh | tail -n1)
export KUBEBUILDER_ASSETS=$assets
log "3/5 build kuryr-controller and the harness"
mkdir -p bin "$out"
CGO_ENABLED=0 "$GO" build -trimpath -o bin/kuryr-controller ./cmd/kuryr-controller
"$GO" build -o bin/bench-neutron ./test/bench/cmd/bench-neutron

state=$(mktemp -d /tmp/kuryr-bench-neutron.XXXXXX)
cleanup() {
	log "cleanup: stopping neutron-server and mariadb, removing $state"
	hack/neutron/stop-mariadb.sh -d "$state" || true
}
trap cleanup EXIT
log "4/5 neutron-server on MariaDB ($workers API workers) on 127.0.0.1:$port"
url=$(KURYR_NEUTRON_API_WORKERS=$workers hack/neutron/start-mariadb.sh -p "$port" -d "$state" | tail -n1)
log "5/5 benchmark: N = $counts, results in $out"
extra=()
eval "extra=(${KURYR_BENCH_ARGS:-})"
if [[ -n ${KURYR_BENCH_OURS_POOLED_ARGS:-} ]]; then
	extra+=(--ours-pooled-args "$KURYR_BENCH_OURS_POOLED_ARGS")
fi
bin/bench-neutron --neutron-url "$url" --neutron-state "$state" --counts "$counts" --out "$out" \
	--controller bin/kuryr-controller --controller-args "${KURYR_BENCH_CONTROLLER_ARGS:-}" "${extra[@]}"
cp "$state/neutron-server.log" "$out/neutron-server.log"
