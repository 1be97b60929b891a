#!/usr/bin/env bash
# Builds (or finds in the cache) the node VM guest, the Kubernetes control
# plane (for the end-to-end tests) and the kubelet and containerd (for
# test/vmpod) and runs the real-VM tests with
# KURYR_TEST_VM=1, so that a missing guest is a failure, not a skip.
# About a minute for a first guest build (the control plane: ~12 minutes the
# first time, seconds once cached), then ~2.5 minutes of tests. The tests that
# also need real Neutron (test/vm's Nova stand-in test, test/vmpod/vlan) run
# when neutron-server is installed (KURYR_TEST_NEUTRON=1 makes its absence
# a failure; for test/vmpod/vlan KURYR_TEST_STRICT=1 does too).
#
# Usage: hack/vm/test.sh [go test flags...]     e.g. hack/vm/test.sh -run Hotplug
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
guest="$("$root/hack/vm/build-guest.sh" | tail -n1)"
assets="$("$root/hack/build-kube-bins.sh" | tail -n1)"
nodebins="$("$root/hack/build-node-bins.sh" | tail -n1)"
echo "vm tests: guest $guest, control plane $assets, kubelet and containerd $nodebins" >&2
cd "$root"
export KUBEBUILDER_ASSETS="$assets" KURYR_NODE_BINS="$nodebins" KURYR_VM_GUEST="$guest" KURYR_TEST_VM=1
exec go test -count=1 -timeout 15m -p 1 "$@" ./test/vm ./test/vmpod/... ./internal/testing/qemu
