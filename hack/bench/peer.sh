#!/usr/bin/env bash
# make bench-peer: our controller and kuryr-kubernetes (the retired Python
# project) one after the other on the same kube-apiserver, neutron-server on
# MariaDB and agent stand-in, nested-vlan, N = 1, 10, 50 pods: ours unpooled,
# kuryr-kubernetes unpooled and with its nested VIF pool, one table with the
# ratios. Run by hand, not in CI.
#
# kuryr-kubernetes is installed from source checkouts the operator gives
# (PyPI is not reachable here and Debian packages no kuryr):
#   KURYR_PEER_SRC  openstack/kuryr-kubernetes (measured: 398bd461, ~10.0.0)
#   KURYR_LIB_SRC   openstack/kuryr-lib, repository openstack/kuryr (265782df)
# hack/bench/peer-venv.sh makes (and caches outside the repository) the venv.
#
# Environment, besides hack/bench/neutron.sh's (KURYR_BENCH_OURS_POOLED_ARGS
# among them: unset, our pooled rows are reported as not measured):
# KURYR_BENCH_KURYR_POOL (min,batch,max,update_frequency of its
# pool; default 10,50,0,2); KURYR_BENCH_ARGS (more bench-neutron flags,
# shell-quoted, e.g. "--round-timeout 15m") is passed on.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
if [[ -z ${KURYR_PEER_SRC:-} || -z ${KURYR_LIB_SRC:-} ]]; then
	cat >&2 <<'MSG'
bench-peer: set KURYR_PEER_SRC to a kuryr-kubernetes checkout (openstack/kuryr-kubernetes,
e.g. commit 398bd461) and KURYR_LIB_SRC to a kuryr-lib checkout (openstack/kuryr, e.g.
commit 265782df):
  make bench-peer KURYR_PEER_SRC=/path/to/kuryr-kubernetes KURYR_LIB_SRC=/path/to/kuryr-lib
MSG
	exit 2
fi
venv=$(hack/bench/peer-venv.sh "$KURYR_PEER_SRC" "$KURYR_LIB_SRC" | tail -n1)
src=$(cd "$KURYR_PEER_SRC" && pwd)
IFS=, read -r pmin pbatch pmax pupdate <<<"${KURYR_BENCH_KURYR_POOL:-10,50,0,2}"
args=(--kuryr-venv "$venv" --kuryr-src "$src" --kuryr-pool-min "$pmin" --kuryr-pool-batch "$pbatch"
	--kuryr-pool-max "$pmax" --kuryr-pool-update "$pupdate")
export KURYR_BENCH_OUT=${KURYR_BENCH_OUT:-results/$(date -u +%Y%m%dT%H%M%SZ)-peer}
KURYR_BENCH_ARGS="${args[*]@Q} ${KURYR_BENCH_ARGS:-}" exec hack/bench/neutron.sh
