// Package vlan is test/vmpod's nested-vlan pod against real Neutron (the
// Nova stand-in, the L2 agent stand-in), in a package of its own so that
// each stays within go test's 10-minute timeout. See docs/node-vm.md.
package vlan

import (
	"os"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmnode"
)

func TestMain(m *testing.M) { os.Exit(vmnode.Main(m)) }

// TestNestedVLANRealNeutron: vmnode.NestedVLANRealNeutron — a pod's eth0
// as a subport of the node VM's trunk in real Neutron, its traffic tagged
// with the subport's VLAN ID on the VM's NIC, and nothing left in Neutron
// after the pod's deletion.
func TestNestedVLANRealNeutron(t *testing.T) { vmnode.NestedVLANRealNeutron(t) }
