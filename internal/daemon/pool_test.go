package daemon

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/ctl"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// linkMAC returns the MAC of link name in the node's namespace.
func (n *node) linkMAC(name string) string {
	n.t.Helper()
	var mac string
	must(n.t, n.nodeNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	}))
	return mac
}

// linkConfigured says whether link name in the node's namespace is up or
// holds an IPv4 address.
func (n *node) linkConfigured(name string) (up bool, addrs int) {
	n.t.Helper()
	must(n.t, n.nodeNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		up, addrs = l.Attrs().Flags&net.FlagUp != 0, len(as)
		return err
	}))
	return up, addrs
}

// setKuryrNode writes the node's KuryrNode status as the controller would
// (created first when missing).
func (n *node) setKuryrNode(st v1alpha1.KuryrNodeStatus) {
	n.t.Helper()
	n.editKuryrNode(func(s *v1alpha1.KuryrNodeStatus) { *s = st })
}

// editKuryrNode changes the node's KuryrNode status with edit and writes
// it as the controller would (the KuryrNode made first when missing).
func (n *node) editKuryrNode(edit func(*v1alpha1.KuryrNodeStatus)) {
	n.t.Helper()
	var kn v1alpha1.KuryrNode
	if err := n.c.Get(n.ctx, types.NamespacedName{Name: n.name}, &kn); err != nil {
		kn = v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
		must(n.t, n.c.Create(n.ctx, &kn))
	}
	edit(&kn.Status)
	must(n.t, n.c.Status().Update(n.ctx, &kn))
}

func eventually(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		done, seen := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDaemonKeepsPoolDevicesIdle: the daemon reads its KuryrNode's
// dpdkDevices and keeps the Ready and Attaching ones that are links in the
// node's namespace down and unconfigured: pool0 (Ready), up as it
// appeared, is taken down; configured again (up, an address) as a DHCP
// client would, it is taken down again; att0 (Attaching) likewise. inuse0
// (owned by a pod) and other0 (in no list) are left up with their
// addresses, and so is the node's uplink ens3.
func TestDaemonKeepsPoolDevicesIdle(t *testing.T) {
	n := newNode(t)
	for _, name := range []string{"pool0", "att0", "inuse0", "other0"} {
		netnstest.AddParent(t, n.nodeNS, name, 1500)
	}
	netnstest.Configure(t, n.nodeNS, "inuse0", "192.168.70.2/24", "")
	netnstest.Configure(t, n.nodeNS, "other0", "192.168.71.2/24", "")
	n.setKuryrNode(v1alpha1.KuryrNodeStatus{ParentMAC: n.linkMAC("ens3"), ParentIPs: []string{nodeIP}, DPDKDevices: []v1alpha1.DPDKDevice{
		{PortID: "p0", MAC: n.linkMAC("pool0"), NetworkID: "net", SubnetID: "sub", State: v1alpha1.DPDKDeviceReady},
		{PortID: "p1", MAC: n.linkMAC("att0"), NetworkID: "net", SubnetID: "sub", State: v1alpha1.DPDKDeviceAttaching},
		{PortID: "p2", MAC: n.linkMAC("inuse0"), NetworkID: "net", SubnetID: "sub", State: v1alpha1.DPDKDeviceInUse, Owner: "pod/uid-1"},
		{PortID: "p3", MAC: n.linkMAC("ens3"), NetworkID: "net", SubnetID: "sub", State: v1alpha1.DPDKDeviceReady},
	}})
	n.startDaemon(10 * time.Second)

	idle := func(name string) func() (bool, string) {
		return func() (bool, string) {
			up, addrs := n.linkConfigured(name)
			return !up && addrs == 0, fmt.Sprintf("up %v with %d addresses", up, addrs)
		}
	}
	eventually(t, "pool0, up as it appeared", idle("pool0"))
	eventually(t, "att0, up as it appeared", idle("att0"))
	netnstest.Configure(t, n.nodeNS, "pool0", "192.168.72.5/24", "")
	eventually(t, "pool0 configured by something on the node", idle("pool0"))
	netnstest.Configure(t, n.nodeNS, "att0", "192.168.73.5/24", "")
	eventually(t, "att0 configured by something on the node", idle("att0"))
	for _, name := range []string{"inuse0", "other0", "ens3"} {
		if up, addrs := n.linkConfigured(name); !up || addrs != 1 {
			t.Errorf("%s: up %v with %d addresses, want left up with its address", name, up, addrs)
		}
	}
}

// TestDaemonLabelsItsNode: the daemon labels its Node with what the node
// offers DPDK (the simulated VM: uio_pci_generic, no IOMMU, no hugepages
// free at first) and its free hot-plug slots from its KuryrNode, follows
// the KuryrNode's changes (and reads the node's hugepages again then),
// removes the slots label when the KuryrNode no longer says, and leaves
// every other label of the Node alone.
func TestDaemonLabelsItsNode(t *testing.T) {
	n := newNode(t)
	var nodeObj corev1.Node
	must(t, n.c.Get(n.ctx, types.NamespacedName{Name: n.name}, &nodeObj))
	nodeObj.Labels = map[string]string{"topology.kubernetes.io/zone": "az1"}
	must(t, n.c.Update(n.ctx, &nodeObj))
	n.setKuryrNode(v1alpha1.KuryrNodeStatus{HotplugSlots: &v1alpha1.HotplugSlots{Limit: 4, Used: 1, Free: 3}})
	n.startDaemon(10 * time.Second)

	labelsAre := func(want map[string]string) func() (bool, string) {
		return func() (bool, string) {
			var no corev1.Node
			must(t, n.c.Get(n.ctx, types.NamespacedName{Name: n.name}, &no))
			return maps.Equal(no.Labels, want), "labels " + labelString(no.Labels)
		}
	}
	want := map[string]string{
		"topology.kubernetes.io/zone":      "az1",
		v1alpha1.NodeLabelUIO:              "true",
		v1alpha1.NodeLabelIOMMU:            v1alpha1.NodeIOMMUNone,
		v1alpha1.NodeLabelHugepagesFree:    "0",
		v1alpha1.NodeLabelHotplugSlotsFree: "3",
	}
	eventually(t, "first labels", labelsAre(want))

	// 500 free 2 MiB pages: 1000 MiB, labelled 512.
	hp := filepath.Join(n.sim.Root(), "sys", "kernel", "mm", "hugepages", "hugepages-2048kB")
	must(t, os.MkdirAll(hp, 0o755))
	must(t, os.WriteFile(filepath.Join(hp, "nr_hugepages"), []byte("600\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(hp, "free_hugepages"), []byte("500\n"), 0o644))
	n.setKuryrNode(v1alpha1.KuryrNodeStatus{HotplugSlots: &v1alpha1.HotplugSlots{Limit: 4, Used: 4, Free: 0}})
	want[v1alpha1.NodeLabelHugepagesFree], want[v1alpha1.NodeLabelHotplugSlotsFree] = "512", "0"
	eventually(t, "labels after the slots were used up and hugepages reserved", labelsAre(want))

	n.setKuryrNode(v1alpha1.KuryrNodeStatus{})
	delete(want, v1alpha1.NodeLabelHotplugSlotsFree)
	eventually(t, "labels after the KuryrNode stopped counting slots", labelsAre(want))
}

func labelString(l map[string]string) string {
	s := ""
	for k, v := range l {
		s += k + "=" + v + " "
	}
	return s
}

// TestNodeLabels: each capability maps to its label, every value is a
// valid label value, and free hugepages are rounded down to a power of
// two.
func TestNodeLabels(t *testing.T) {
	for _, c := range []struct {
		caps  ctl.Capabilities
		slots *v1alpha1.HotplugSlots
		want  map[string]string
	}{
		{ctl.Capabilities{}, nil, map[string]string{v1alpha1.NodeLabelIOMMU: "none", v1alpha1.NodeLabelHugepagesFree: "0"}},
		{ctl.Capabilities{UIO: true, VFIO: true, VFIOType1: true, IOMMUGroups: 5, HugepagesFreeMiB: 2048}, &v1alpha1.HotplugSlots{Free: 7},
			map[string]string{v1alpha1.NodeLabelUIO: "true", v1alpha1.NodeLabelVFIO: "true", v1alpha1.NodeLabelIOMMU: "viommu",
				v1alpha1.NodeLabelHugepagesFree: "2048", v1alpha1.NodeLabelHotplugSlotsFree: "7"}},
		// vfio-pci loaded with an IOMMU but without vfio_iommu_type1: not usable.
		{ctl.Capabilities{VFIO: true, IOMMUGroups: 5, HugepagesFreeMiB: 3}, nil,
			map[string]string{v1alpha1.NodeLabelIOMMU: "viommu", v1alpha1.NodeLabelHugepagesFree: "2"}},
		{ctl.Capabilities{VFIO: true, NoIOMMU: true, HugepagesFreeMiB: 1023}, &v1alpha1.HotplugSlots{Free: -1},
			map[string]string{v1alpha1.NodeLabelVFIO: "true", v1alpha1.NodeLabelIOMMU: "no-iommu",
				v1alpha1.NodeLabelHugepagesFree: "512", v1alpha1.NodeLabelHotplugSlotsFree: "0"}},
	} {
		got := NodeLabels(c.caps, c.slots)
		if !maps.Equal(got, c.want) {
			t.Errorf("NodeLabels(%+v, %+v) = %v, want %v", c.caps, c.slots, got, c.want)
		}
		for k, v := range got {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 || len(validation.IsQualifiedName(k)) > 0 {
				t.Errorf("label %s=%s is not valid: %v", k, v, errs)
			}
		}
	}
}

// TestParentFoundByTheRecordedMAC: the daemon takes as the VM's NIC (the
// parent of pods' kernel interfaces, the uplink the idle keeper never
// touches) the link with the MAC the controller recorded in the node's
// KuryrNode (status.parentMAC, the VM's Neutron port), not the link that
// holds the node's InternalIP (ens3 here).
func TestParentFoundByTheRecordedMAC(t *testing.T) {
	n := newNode(t)
	netnstest.AddParent(t, n.nodeNS, "ens7", 1500)
	mac := n.linkMAC("ens7")
	n.setKuryrNode(v1alpha1.KuryrNodeStatus{ParentMAC: mac, ParentIPs: []string{nodeIP}})
	n.startDaemon(10 * time.Second)
	d := n.daemon
	eventually(t, "the daemon sees the KuryrNode's parentMAC", func() (bool, string) {
		d.nodeMu.Lock()
		defer d.nodeMu.Unlock()
		return d.nodeStatus.ParentMAC == mac, "parentMAC " + d.nodeStatus.ParentMAC
	})
	if got, err := d.findParentLink(n.ctx); err != nil || got != "ens7" {
		t.Fatalf("the daemon's parent link = %q, %v; want ens7, the link with the recorded MAC %s (ens3 holds the node IP)", got, err, mac)
	}
}
