package binding

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// holdSet builds a node's drivers over an empty sysfs root, the VM's NIC
// given by opts.
func holdSet(t *testing.T, kernel KernelOptions) *Set {
	t.Helper()
	dir := t.TempDir()
	s, err := New(Options{SysfsRoot: filepath.Join(dir, "root"), CheckpointDir: filepath.Join(dir, "ck"), Kernel: kernel})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// holdPlan is a request of pod podUID's container cid for ifName through
// the driver named drv.
func holdPlan(t *testing.T, s *Set, drv, cid, ifName, podUID, portID, mac string, vlanID int) Plan {
	t.Helper()
	d := Driver(s.Claimed())
	if drv != checkpoint.KindClaimed {
		var err error
		if d, err = s.ForDriver(drv); err != nil {
			t.Fatal(err)
		}
	}
	return Plan{Driver: d, Request: Request{ContainerID: cid, IfName: ifName, PodUID: podUID, PortID: portID,
		MAC: hw(t, mac), VLANID: vlanID}}
}

// wantHeld fails unless err is a HeldError saying holder holds what.
func wantHeld(t *testing.T, what string, err error, holder checkpoint.Key, inFlight bool, held string) {
	t.Helper()
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
		t.Fatalf("%s: err = %v, want a HeldError", what, err)
	}
	if he.Holder != holder || he.InFlight != inFlight || he.What != held {
		t.Fatalf("%s: %+v, want %s holding %q (in flight %v)", what, he, holder, held, inFlight)
	}
}

// TestHoldRefusesWhatAnotherPodsCheckpointHolds: with pod-a's
// attachments checkpointed (VLAN with its tag, an older VLAN record
// without it, MACVLAN, DPDK, a claim's device), pod-b may not have their
// ports, the MACs the VM sees them by (MACVLAN, DPDK, claimed; not a VLAN
// link's MAC) or the VLAN tag; a newer sandbox of pod-a, a retry of the
// same attachment and another pod of the same claim may. A refused Hold
// holds nothing.
func TestHoldRefusesWhatAnotherPodsCheckpointHolds(t *testing.T) {
	t.Parallel()
	s := holdSet(t, KernelOptions{})
	const (
		macVLAN, macOld, macMACVLAN = "fa:16:3e:00:01:01", "fa:16:3e:00:01:02", "fa:16:3e:00:01:03"
		macDPDK, macClaim, macFree  = "fa:16:3e:00:01:04", "fa:16:3e:00:01:05", "fa:16:3e:00:01:06"
	)
	for _, r := range []checkpoint.Record{
		{ContainerID: "a1", IfName: "eth0", Kind: checkpoint.KindVLAN, MAC: macVLAN, PortID: "p-vlan", PodUID: "pod-a",
			Extra: map[string]string{extraVLANID: "101"}},
		{ContainerID: "a1", IfName: "net2", Kind: checkpoint.KindVLAN, MAC: macOld, PortID: "p-oldvlan", PodUID: "pod-a"},
		{ContainerID: "a1", IfName: "net3", Kind: checkpoint.KindMACVLAN, MAC: macMACVLAN, PortID: "p-macvlan", PodUID: "pod-a"},
		{ContainerID: "a1", IfName: "net1", Kind: checkpoint.KindDPDK, MAC: macDPDK, PortID: "p-dpdk", PodUID: "pod-a",
			PCIAddress: "0000:01:00.0", TargetDriver: "uio_pci_generic"},
		{ContainerID: "a1", IfName: "net4", Kind: checkpoint.KindClaimed, MAC: macClaim, PortID: "p-claim", PodUID: "pod-a",
			PCIAddress: "0000:02:00.0", TargetDriver: "vfio-pci", Extra: map[string]string{extraClaimUID: "claim-1"}},
	} {
		if err := s.store.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	vlan, macvlan, dpdk, claimed := netconf.DriverNestedVLAN, netconf.DriverNestedMACVLAN, netconf.DriverNestedDPDK, checkpoint.KindClaimed
	for _, c := range []struct {
		name                        string
		drv, cid, ifName, pod, port string
		mac                         string
		vlanID                      int
		claim                       string
		holder                      string // ifName of a1's holder; "" none
		what                        string
	}{
		{"the port of a VLAN", vlan, "b1", "eth0", "pod-b", "p-vlan", macFree, 7, "", "eth0", "port p-vlan"},
		{"the tag of a VLAN, another port", vlan, "b1", "eth0", "pod-b", "p-new", macFree, 101, "", "eth0", "VLAN 101 on the VM's NIC"},
		{"a VLAN link's MAC is no resource", macvlan, "b1", "eth0", "pod-b", "p-new", macVLAN, 0, "", "", ""},
		{"the port of a VLAN recorded without its tag", vlan, "b1", "eth0", "pod-b", "p-oldvlan", macFree, 7, "", "net2", "port p-oldvlan"},
		{"the MAC of a MACVLAN", macvlan, "b1", "eth0", "pod-b", "p-new", macMACVLAN, 0, "", "net3", "MAC " + macMACVLAN},
		{"the MAC of a DPDK device", dpdk, "b1", "net1", "pod-b", "p-new", macDPDK, 0, "", "net1", "MAC " + macDPDK},
		{"the port of a DPDK device", macvlan, "b1", "eth0", "pod-b", "p-dpdk", macFree, 0, "", "net1", "port p-dpdk"},
		{"another claim's device", claimed, "b1", "net4", "pod-b", "p-claim", macClaim, 0, "claim-2", "net4", "port p-claim"},
		{"the same claim, another pod", claimed, "b1", "net4", "pod-b", "p-claim", macClaim, 0, "claim-1", "", ""},
		{"a newer sandbox of the same pod", vlan, "a2", "eth0", "pod-a", "p-vlan", macVLAN, 101, "", "", ""},
		{"a retry of the same attachment", vlan, "a1", "eth0", "", "p-vlan", macVLAN, 101, "", "", ""},
		{"nothing held", vlan, "b1", "eth0", "pod-b", "p-new", macFree, 102, "", "", ""},
	} {
		p := holdPlan(t, s, c.drv, c.cid, c.ifName, c.pod, c.port, c.mac, c.vlanID)
		p.Request.ClaimUID = c.claim
		release, err := s.Hold(p)
		if c.holder == "" {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			release()
			continue
		}
		wantHeld(t, c.name, err, checkpoint.Key{ContainerID: "a1", IfName: c.holder}, false, c.what)
		if !strings.Contains(err.Error(), "held on this node by container a1 interface "+c.holder+" of pod pod-a, whose checkpoint holds it until its DEL") {
			t.Fatalf("%s: message %q", c.name, err)
		}
	}

	// A Hold refused for one plan holds none of the others.
	_, err := s.Hold(holdPlan(t, s, macvlan, "b1", "eth0", "pod-b", "p-free", macFree, 0),
		holdPlan(t, s, dpdk, "b1", "net1", "pod-b", "p-dpdk", macDPDK, 0))
	wantHeld(t, "two plans, one held", err, checkpoint.Key{ContainerID: "a1", IfName: "net1"}, false, "port p-dpdk")
	release, err := s.Hold(holdPlan(t, s, macvlan, "c1", "eth0", "pod-c", "p-free", macFree, 0))
	if err != nil {
		t.Fatalf("the port of a refused Hold is held: %v", err)
	}
	release()
}

// TestHoldCoversADDsUnderWay: between Hold and its release (an ADD under
// way, no checkpoint yet) another pod's Hold of the same port or MAC is
// refused, naming the attachment in flight; the same attachment's retry
// is not; after the release it is free.
func TestHoldCoversADDsUnderWay(t *testing.T) {
	t.Parallel()
	s := holdSet(t, KernelOptions{})
	const macA, macB = "fa:16:3e:00:02:01", "fa:16:3e:00:02:02"
	releaseA, err := s.Hold(holdPlan(t, s, netconf.DriverNestedDPDK, "a1", "net1", "pod-a", "p-1", macA, 0),
		holdPlan(t, s, netconf.DriverNestedMACVLAN, "a1", "eth0", "pod-a", "p-2", macB, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Hold(holdPlan(t, s, netconf.DriverNestedMACVLAN, "b1", "eth0", "pod-b", "p-2", macB, 0))
	wantHeld(t, "b's port while a's ADD is under way", err, checkpoint.Key{ContainerID: "a1", IfName: "eth0"}, true, "port p-2")
	if !strings.Contains(err.Error(), "of pod pod-a, whose ADD is under way") {
		t.Fatalf("message %q", err)
	}
	_, err = s.Hold(holdPlan(t, s, netconf.DriverNestedDPDK, "b1", "net1", "pod-b", "p-9", macA, 0))
	wantHeld(t, "b's device while a's ADD is under way", err, checkpoint.Key{ContainerID: "a1", IfName: "net1"}, true, "MAC "+macA)
	retry, err := s.Hold(holdPlan(t, s, netconf.DriverNestedDPDK, "a1", "net1", "pod-a", "p-1", macA, 0))
	if err != nil {
		t.Fatalf("a retried ADD of a's own attachment: %v", err)
	}
	retry()
	releaseA()
	releaseA() // a second call is harmless
	releaseB, err := s.Hold(holdPlan(t, s, netconf.DriverNestedMACVLAN, "b1", "eth0", "pod-b", "p-2", macB, 0))
	if err != nil {
		t.Fatalf("b's port after a's ADD ended (no checkpoint): %v", err)
	}
	releaseB()
}

// TestVLANCheckpointHoldsItsTag: the VLAN driver records the tag in its
// checkpoint (Extra vlanID), so that another pod's port given the same
// tag is refused while the attachment is there, and not after its
// Detach. The kernel here may lack 802.1Q: the VLAN driver runs with
// MACVLAN's link constructor, as in TestVLANFlowWithStandInLink.
func TestVLANCheckpointHoldsItsTag(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	ctx := context.Background()
	s := holdSet(t, KernelOptions{ParentNetns: e.node.Path(), Parent: func(context.Context) (string, error) { return "ens3", nil }})
	drv, err := s.ForDriver(netconf.DriverNestedVLAN)
	if err != nil {
		t.Fatal(err)
	}
	v := drv.(*VLAN)
	v.kind.newLink, v.kind.owns = macvlanLink, macvlanOwns
	req := kernelRequest(t, e)
	req.VLANID, req.PodUID = 200, "pod-a"
	if _, err := v.Attach(ctx, req); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	rec, err := s.store.Get(req.ContainerID, req.IfName)
	if err != nil || rec.Extra[extraVLANID] != "200" {
		t.Fatalf("checkpoint %+v, %v: want Extra %s 200", rec, err, extraVLANID)
	}
	other := holdPlan(t, s, netconf.DriverNestedVLAN, "b1", "eth0", "pod-b", "port-b", "fa:16:3e:00:03:01", 200)
	_, err = s.Hold(other)
	wantHeld(t, "another port with the tag", err, rec.Key(), false, "VLAN 200 on the VM's NIC")
	if err := v.Detach(ctx, req.ContainerID, req.IfName); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	release, err := s.Hold(other)
	if err != nil {
		t.Fatalf("the tag after Detach: %v", err)
	}
	release()
}
