// Package aio is the all-in-one environment: a real Kubernetes control plane
// (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) on
// 127.0.0.1, the simulated OpenStack cloud in-process, and N simulated node
// VMs, each a network namespace with the VM's NIC and a simulated PCI bus
// that grows a virtio-net device when Nova attaches a port. On top of it run
// the project's own binaries, kuryr-controller and one kuryr-daemon per node,
// and a kubelet stand-in per node that calls the CNI through libcni as
// containerd does.
//
// It backs `make run`, `make demo` (test/aio/cmd/kuryr-aio) and the
// end-to-end tests (test/e2e). Everything it makes — namespaces, links,
// processes, temporary directories — carries a per-environment prefix and is
// removed by Close, also when Start fails half-way.
//
// It needs root (network namespaces).
package aio
