// Package dra is the DRA driver on the node VM's real kubelet (issue 15,
// "Proof on real parts"), in a package of its own so that it stays within
// go test's 10-minute timeout.
package dra

import (
	"os"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmnode"
)

func TestMain(m *testing.M) { os.Exit(vmnode.Main(m)) }

// TestDRAPodsOnNodeVM: vmnode.DRAPods — an unprivileged testpmd pod on its
// claimed vfio-pci device (host counts its frames), device isolation
// between two claim pods, a third claim Pending while no device is free,
// Unprepare back to virtio-pci, and the daemon killed in Prepare.
func TestDRAPodsOnNodeVM(t *testing.T) { vmnode.DRAPods(t) }
