// Package vfio is test/vmpod's DPDK container with vfio-pci and a virtual
// IOMMU, in a package of its own so that each stays within go test's
// 10-minute timeout.
package vfio

import (
	"os"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmnode"
)

func TestMain(m *testing.M) { os.Exit(vmnode.Main(m)) }

// TestDPDKPodVFIOWithVIOMMU: vmnode.DPDKPod with a virtual IOMMU in the
// VM and the network asking for vfio-pci.
func TestDPDKPodVFIOWithVIOMMU(t *testing.T) {
	vmnode.DPDKPod(t, true, v1alpha1.DPDKDriverVFIOPCI, true)
}
