// Package vmpod holds the node VM tests in which pods are containers, on a
// real kubelet and containerd in the QEMU guest (test/vmnode): the node's
// registration, the kuryr-daemon DaemonSet's pod, and a DPDK container with
// uio_pci_generic. The vfio-pci run
// is test/vmpod/vfio, a package of its own so that each stays within go
// test's 10-minute timeout. See docs/node-vm.md.
package vmpod

import (
	"os"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmnode"
)

func TestMain(m *testing.M) { os.Exit(vmnode.Main(m)) }

// TestDPDKPodUIO: vmnode.DPDKPod with uio_pci_generic.
func TestDPDKPodUIO(t *testing.T) {
	vmnode.DPDKPod(t, false, v1alpha1.DPDKDriverUIOPCIGeneric, false)
}
