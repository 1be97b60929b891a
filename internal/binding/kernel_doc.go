// Package binding plugs pod interfaces on a node: kernel netdevs in the pod's
// network namespace (nested-vlan, nested-macvlan: kernel*.go, vlan*.go,
// macvlan*.go) and DPDK devices bound to a userspace driver (nested-dpdk:
// dpdk*.go). Each driver is safe to call again after a crash: ADD rolls back
// what it did on error, DEL with nothing to do succeeds.
package binding
