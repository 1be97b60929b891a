#!/usr/bin/env bash
# make bench: how fast pods get their networks on the all-in-one environment
# (test/aio: real Kubernetes control plane, simulated OpenStack and node VMs,
# the project's real binaries). Needs root (network namespaces). Builds the
# binaries and the harness, takes etcd and the Kubernetes binaries from
# hack/build-kube-bins.sh (cached), and runs test/bench/cmd/bench-aio: one
# fresh environment per profile and size, closed (everything removed) after
# each run. Prints progress, then the tables; results in KURYR_BENCH_OUT.
#
# Environment: KURYR_BENCH_SIZES (default 1,10,100; N or N:NODES, 1000 → 50
# nodes), KURYR_BENCH_PROFILES (default zero,realistic), KURYR_BENCH_TIMEOUT
# (per run, default 10m), KURYR_BENCH_OUT (default results/<UTC>-aio),
# KURYR_BENCH_DPDK_POOL (warm pools on every node before the pods, each of
# that size: "auto", sized for the pods per node, or "MIN,MAX[,BATCH]";
# default none), KURYR_BENCH_POOLS (with KURYR_BENCH_DPDK_POOL, which
# interfaces are pooled: "all", eth0, the management network and dpdk0,
# the default; or "dpdk", dpdk0 only),
# KURYR_BENCH_CPU_SECONDS (CPU profiles of the controller and one daemon in
# zero-profile runs, over that many seconds from the first pod create;
# default 30, 0 for none), KURYR_BENCH_PPROF (default 1; 0 runs without
# any profiling, so that the controller's and daemons' RSS is their own: a
# heap profile's fetch counts in it).
# The defaults finish in about 5 minutes; 1000 pods over 50 nodes (zero
# latency) adds about 5: KURYR_BENCH_SIZES=1000 KURYR_BENCH_PROFILES=zero.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
if [[ $(id -u) -ne 0 ]]; then
	echo "make bench needs root: it creates network namespaces (the simulated node VMs). Run: sudo make bench" >&2
	exit 1
fi
sizes=${KURYR_BENCH_SIZES:-1,10,100}
profiles=${KURYR_BENCH_PROFILES:-zero,realistic}
timeout=${KURYR_BENCH_TIMEOUT:-10m}
out=${KURYR_BENCH_OUT:-results/$(date -u +%Y%m%dT%H%M%SZ)-aio}
GO=${GO:-go}

log() { echo "bench: $*" >&2; }

log "1/3 build the binaries and the harness"
make --no-print-directory build >&2
"$GO" build -o bin/bench-aio ./test/bench/cmd/bench-aio
log "2/3 kube-apiserver and etcd (cached after the first build)"
assets=$(hack/build-kube-bins.sh | tail -n1)
export KUBEBUILDER_ASSETS=$assets
log "3/3 benchmark: sizes $sizes, profiles $profiles, pools ${KURYR_BENCH_DPDK_POOL:-none} (${KURYR_BENCH_POOLS:-all}), results in $out"
exec bin/bench-aio --sizes "$sizes" --profiles "$profiles" --run-timeout "$timeout" --out "$out" --bin-dir bin \
	--dpdk-pool "${KURYR_BENCH_DPDK_POOL:-}" --pools "${KURYR_BENCH_POOLS:-all}" --cpu-profile-seconds "${KURYR_BENCH_CPU_SECONDS:-30}" \
	--pprof="${KURYR_BENCH_PPROF:-1}"
