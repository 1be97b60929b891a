// Package binding plugs pod interfaces on a node: kernel netdevs in the pod's
// network namespace (nested-vlan, nested-macvlan: kernel*.go, vlan*.go,
// macvlan*.go) and DPDK devices bound to a userspace driver (nested-dpdk:
// dpdk*.go). The three implement one Driver (driver.go): Attach, Check and
// Detach of a Request, each driver writing its own checkpoint before it
// changes anything; set.go builds them for a node and maps driver names and
// checkpoint kinds to them. Each driver is safe to call again after a crash:
// ADD rolls back what it did on error, DEL with nothing to do succeeds.
package binding
