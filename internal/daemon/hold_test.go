package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// givePort makes the next createPod give interface ifName the port portID
// of another pod (a port the controller recycled to the node's pool and
// handed on).
func (n *node) givePort(ifName, portID string) {
	n.statusEdit = func(st *v1alpha1.KuryrPodStatus) {
		for i := range st.Interfaces {
			if st.Interfaces[i].IfName == ifName {
				st.Interfaces[i].PortID = portID
			}
		}
	}
}

// heldBy fails the test unless err is "try again later" (code 11) saying
// that interface ifName's port portID is held by the attachment (sandbox,
// holderIf) of pod holder, and how.
func heldBy(t *testing.T, what string, err error, ifName, portID, sandbox, holderIf, holder, how string) {
	t.Helper()
	cniCode(t, what, err, cniapi.CodeTryAgainLater)
	want := "interface " + ifName + ": port " + portID + " is held on this node by container " + sandbox +
		" interface " + holderIf + " of pod " + holder + ", " + how
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %q does not say %q", what, err, want)
	}
}

// TestAddWaitsForAPortAnotherPodHolds: pod a's ADD plugged its eth0 (a
// MACVLAN with its port's MAC; checkpoint). Pod b is given the same port
// (the controller recycled it while a's attachment is still there): b's
// ADD is "try again later" (code 11) naming a's sandbox, interface and
// pod, and plugs nothing, neither b's eth0 nor b's own DPDK device. Once
// a's DEL undid the attachment, b's retried ADD plugs both.
func TestAddWaitsForAPortAnotherPodHolds(t *testing.T) {
	n := newNode(t)
	const (
		sandboxB   = "5a0d000000000000000000000000b001"
		pciB, macB = "0000:02:00.0", "fa:16:3e:00:0b:07"
	)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	must(t, n.sim.AddVirtioNet(pciB, macB))
	n.startDaemon(20 * time.Second)
	a, _ := n.createPod("holder", v1alpha1.StateActive)
	rtA := n.rt()
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, rtA); err != nil {
		t.Fatalf("ADD of a: %v", err)
	}
	portX := "port-eth0-" + n.podName("holder")

	n.givePort("eth0", portX)
	b, _ := n.createPodMACs("taker", v1alpha1.StateActive, eth0MAC, macB)
	n.statusEdit = nil
	nsB := netnstest.NewNS(t)
	rtB := rtFor(b, sandboxB, nsB.Path())
	_, err := n.cni.AddNetworkList(n.ctx, n.list, rtB)
	heldBy(t, "ADD of b while a's eth0 holds its port", err, "eth0", portX, sandboxID, "eth0", string(a.UID), "whose checkpoint holds it until its DEL")
	if recs := n.records(sandboxB); len(recs) != 0 {
		t.Fatalf("refused ADD of b left checkpoints: %+v", recs)
	}
	if hasLink(t, nsB, "eth0") {
		t.Fatal("refused ADD of b plugged its eth0")
	}
	if drv := n.sim.Driver(pciB); drv != pci.DriverVirtioPCI {
		t.Fatalf("refused ADD of b bound its own device %s to %q", pciB, drv)
	}
	if mac, _, _ := n.podLink("eth0"); mac != eth0MAC {
		t.Fatalf("a's eth0 has MAC %q after b's refused ADD, want %s", mac, eth0MAC)
	}

	must(t, n.cni.DelNetworkList(n.ctx, n.list, rtA))
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, rtB); err != nil {
		t.Fatalf("ADD of b after a's DEL: %v", err)
	}
	if !hasLink(t, nsB, "eth0") {
		t.Fatal("b has no eth0 after its ADD")
	}
	if drv := n.sim.Driver(pciB); drv != pci.DriverUIO {
		t.Fatalf("b's device %s is on %q after its ADD", pciB, drv)
	}
	recs := n.records(sandboxB)
	if len(recs) != 2 || recs[0].IfName != "eth0" || recs[0].PortID != portX {
		t.Fatalf("checkpoints of b: %+v", recs)
	}
}

// TestAddWaitsForAPortWhoseAddIsUnderWay: pod a's ADD is held mid-way: its
// eth0 is plugged and its DPDK port's device has not appeared in the VM
// yet, so its ADD waits for it, and a's net1 has no checkpoint yet. Pod b
// is given that port meanwhile: b's ADD is "try again later" (code 11) at
// once, naming a's ADD under way, with nothing plugged, while a's ADD
// still waits. The device appears: a's ADD binds it; b is still refused,
// now by a's checkpoint; after a's DEL b's retried ADD binds the device.
func TestAddWaitsForAPortWhoseAddIsUnderWay(t *testing.T) {
	n := newNode(t)
	const sandboxB = "5a0d000000000000000000000000b002"
	n.startDaemon(30 * time.Second)
	a, _ := n.createPod("holder", v1alpha1.StateActive)
	portX := "port-" + n.podName("holder")
	rtA := n.rt()
	aDone := make(chan addAnswer, 1)
	go func() {
		res, err := n.cni.AddNetworkList(n.ctx, n.list, rtA)
		aDone <- addAnswer{res, err}
	}()
	underWay := func(when string) {
		t.Helper()
		select {
		case ans := <-aDone:
			t.Fatalf("%s: a's ADD returned (%v) before its device appeared", when, ans.err)
		default:
		}
	}
	eventually(t, "a's eth0 plugged while its ADD waits for its device", func() (bool, string) {
		underWay("waiting for a's eth0")
		return hasLink(t, n.podNS, "eth0"), "no eth0 in a's netns"
	})

	n.givePort("net1", portX)
	b, _ := n.createPodMACs("taker", v1alpha1.StateActive, "fa:16:3e:00:00:56", dpdkMAC)
	n.statusEdit = nil
	nsB := netnstest.NewNS(t)
	rtB := rtFor(b, sandboxB, nsB.Path())
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	_, err := n.cni.AddNetworkList(ctx, n.list, rtB)
	cancel()
	heldBy(t, "ADD of b while a's ADD of the port is under way", err, "net1", portX, sandboxID, "net1", string(a.UID),
		"whose ADD is under way")
	// The hold landed mid-ADD: a's ADD has not returned and its net1 has
	// no checkpoint yet; only the ADDs under way know a holds the port.
	underWay("b refused")
	if recs := n.records(sandboxID); len(recs) != 1 || recs[0].IfName != "eth0" {
		t.Fatalf("checkpoints of a while its ADD waits for its device: %+v, want eth0's only", recs)
	}
	if recs := n.records(sandboxB); len(recs) != 0 || hasLink(t, nsB, "eth0") {
		t.Fatalf("refused ADD of b plugged something: checkpoints %+v, eth0 %v", recs, hasLink(t, nsB, "eth0"))
	}

	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	select {
	case ans := <-aDone:
		if ans.err != nil {
			t.Fatalf("ADD of a once its device appeared: %v", ans.err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("ADD of a did not return after its device appeared")
	}
	if drv := n.sim.Driver(dpdkPCI); drv != pci.DriverUIO {
		t.Fatalf("a's device is on %q after its ADD", drv)
	}
	_, err = n.cni.AddNetworkList(n.ctx, n.list, rtB)
	heldBy(t, "ADD of b while a's net1 holds the port", err, "net1", portX, sandboxID, "net1", string(a.UID), "whose checkpoint holds it until its DEL")

	must(t, n.cni.DelNetworkList(n.ctx, n.list, rtA))
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, rtB); err != nil {
		t.Fatalf("ADD of b after a's DEL: %v", err)
	}
	recs := n.records(sandboxB)
	if len(recs) != 2 || recs[1].IfName != "net1" || recs[1].PCIAddress != dpdkPCI || recs[1].PortID != portX {
		t.Fatalf("checkpoints of b: %+v", recs)
	}
	if drv := n.sim.Driver(dpdkPCI); drv != pci.DriverUIO {
		t.Fatalf("the device is on %q after b's ADD", drv)
	}
}
