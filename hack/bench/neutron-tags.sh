#!/usr/bin/env bash
# What a pooled port's owner tag costs a real neutron-server: starts one on a
# private MariaDB (hack/neutron/start-mariadb.sh, 2 API workers as in
# make bench-neutron), runs test/bench/cmd/bench-tags (one tag replace
# against one and two single-tag adds, 1, 9 and 50 ports at once), prints
# its table, and stops and removes the server and its database, whatever
# happens. Run by hand; see docs/benchmarks.md.
#
# Environment: KURYR_BENCH_PORT (Neutron's port, default 19798; MariaDB
# takes port+10000), KURYR_NEUTRON_API_WORKERS (default 2),
# KURYR_BENCH_ARGS (extra bench-tags flags, e.g. "--rounds 8").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
port=${KURYR_BENCH_PORT:-19798}
workers=${KURYR_NEUTRON_API_WORKERS:-2}
GO=${GO:-go}

hack/neutron/install-mariadb.sh
mkdir -p bin
"$GO" build -o bin/bench-tags ./test/bench/cmd/bench-tags
state=$(mktemp -d /tmp/kuryr-bench-tags.XXXXXX)
trap 'hack/neutron/stop-mariadb.sh -d "$state" || true' EXIT
url=$(KURYR_NEUTRON_API_WORKERS=$workers hack/neutron/start-mariadb.sh -p "$port" -d "$state" | tail -n1)
# shellcheck disable=SC2086
bin/bench-tags --neutron-url "$url" --neutron-log "$state/neutron-server.log" ${KURYR_BENCH_ARGS:-}
