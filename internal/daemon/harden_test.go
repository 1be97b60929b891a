package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// nodeNICPCI is where the node VM's own NIC sits on its PCI bus.
const nodeNICPCI = "0000:00:03.0"

// TestDPDKRefusesTheNodesNIC performs the "pod MAC = node MAC" attack at its
// dangerous moment: the pod's DPDK port carries the MAC of the node's own
// NIC (Neutron allows it on another network) and the hot-plugged twin has
// not appeared yet, so the node's NIC (on the PCI bus, holding the node's
// address) is the only device with that MAC. The ADD is refused with a
// CNI error naming the node's link, the NIC stays on virtio-pci and no
// checkpoint is left. When the twin then appears, two devices have the MAC
// and the ADD is refused again; the NIC is never touched.
func TestDPDKRefusesTheNodesNIC(t *testing.T) {
	n := newNode(t)
	var nicMAC string
	must(t, n.nodeNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("ens3")
		if err == nil {
			nicMAC = l.Attrs().HardwareAddr.String()
		}
		return err
	}))
	must(t, n.sim.AddVirtioNet(nodeNICPCI, nicMAC))
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { s.Interfaces = s.Interfaces[1:] } // net1 (DPDK) only
	n.createPodMACs("attack", v1alpha1.StateActive, eth0MAC, nicMAC)
	n.startDaemon(2 * time.Second)

	_, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	cniCode(t, "ADD of a DPDK port with the node's MAC", err, cniapi.CodeInternal)
	if want := "is the node's link ens3, which is the node's uplink"; !strings.Contains(err.Error(), want) {
		t.Fatalf("ADD error %q does not say %q", err, want)
	}
	if drv := n.sim.Driver(nodeNICPCI); drv != "virtio-pci" {
		t.Fatalf("the node's NIC %s is bound to %q after the refused ADD", nodeNICPCI, drv)
	}
	if recs := n.records(sandboxID); len(recs) != 0 {
		t.Fatalf("checkpoints left by the refused ADD: %+v", recs)
	}

	// The twin appears: two devices, refused as ambiguous.
	must(t, n.sim.AddVirtioNet(dpdkPCI, nicMAC))
	_, err = n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	if err == nil || !strings.Contains(err.Error(), "more than one PCI device") {
		t.Fatalf("ADD with the twin present: %v, want a refusal naming both devices", err)
	}
	for _, a := range []string{nodeNICPCI, dpdkPCI} {
		if drv := n.sim.Driver(a); drv != "virtio-pci" {
			t.Fatalf("device %s is bound to %q after the refused ADD", a, drv)
		}
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}
