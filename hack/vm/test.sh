#!/usr/bin/env bash
# Builds (or finds in the cache) the node VM guest and runs the real-VM tests
# with KURYR_TEST_VM=1, so that a missing guest is a failure, not a skip.
# Meant for CI: about a minute for a first guest build, then ~45 s of tests.
#
# Usage: hack/vm/test.sh [go test flags...]     e.g. hack/vm/test.sh -run Hotplug
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
guest="$("$root/hack/vm/build-guest.sh" | tail -n1)"
echo "vm tests: guest $guest" >&2
cd "$root"
KURYR_VM_GUEST="$guest" KURYR_TEST_VM=1 exec go test -count=1 -timeout 15m "$@" ./test/vm ./internal/qemu
