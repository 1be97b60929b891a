package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
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

// TestNADDeviceInfoFileOutsideTheDirectoryIsRefused performs the NAD
// author's attack on the root daemon's file writes: Multus passes the NAD's
// config with a CNIDeviceInfoFile, and the NAD names a file in /etc or one
// reached through a symlink out of the device-info directory. ADD is
// refused with code 7 naming runtimeConfig.CNIDeviceInfoFile before
// anything happens (device not bound, no checkpoint, no file written); the
// DEL that follows succeeds and deletes nothing.
func TestNADDeviceInfoFileOutsideTheDirectoryIsRefused(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemonMode(5*time.Second, false)
	n.createPod("vnf", v1alpha1.StateActive)

	dir := binding.DeviceInfoDir(n.dir)
	outside := filepath.Join(n.dir, "outside")
	victim := filepath.Join(outside, "victim")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.MkdirAll(outside, 0o755))
	must(t, os.WriteFile(victim, []byte("precious"), 0o600))
	must(t, os.Symlink(outside, filepath.Join(dir, "linkdir")))
	inEtc := fmt.Sprintf("/etc/kuryr-dpdk-test-%s", n.name)

	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane","plugins":[{"type":"kuryr-cni","daemonSocket":%q,
		"driver":"nested-dpdk","subnetId":"6a2d7ffc-1c87-4d4b-9d2f-4b0f4a39d2e1","capabilities":{"CNIDeviceInfoFile":true}}]}`, n.socket)
	nc, err := libcni.NetworkConfFromBytes([]byte(conf))
	must(t, err)
	for _, path := range []string{inEtc, filepath.Join(dir, "linkdir", "victim")} {
		rt := n.rt()
		rt.IfName = "net1"
		rt.CapabilityArgs = map[string]any{"CNIDeviceInfoFile": path}
		_, err := n.cni.AddNetworkList(n.ctx, nc, rt)
		cniCode(t, "ADD with CNIDeviceInfoFile "+path, err, cniapi.CodeBadConfig)
		if !strings.Contains(err.Error(), "runtimeConfig.CNIDeviceInfoFile refused") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("ADD error %q names neither the field nor the directory", err)
		}
		if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
			t.Fatalf("device bound to %q after the refused ADD", drv)
		}
		if recs := n.records(sandboxID); len(recs) != 0 {
			t.Fatalf("checkpoints left by the refused ADD: %+v", recs)
		}
		must(t, n.cni.DelNetworkList(n.ctx, nc, rt))
		if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
			t.Fatalf("after ADD and DEL with %s the file outside is %q, %v", path, b, err)
		}
		if _, err := os.Stat(inEtc); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a file was written in /etc: %v", err)
		}
	}
}

// quarantined lists the files set aside in the node's checkpoint
// quarantine directory (made by the first file set aside: none yet is
// none).
func (n *node) quarantined() []string {
	n.t.Helper()
	return n.listDir(filepath.Join(n.ckptDir, checkpoint.QuarantineDir), true)
}

// checkpoints lists the node's checkpoint directory. The daemon's store
// makes it when the daemon starts, so a directory that cannot be read, or
// is missing, fails the test: a leak check must not read a failed lookup
// as nothing left.
func (n *node) checkpoints() []string {
	n.t.Helper()
	return n.listDir(n.ckptDir, false)
}

// listDir lists the names in dir; any error fails the test, but a missing
// dir when missingOK.
func (n *node) listDir(dir string, missingOK bool) []string {
	n.t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !(missingOK && errors.Is(err, os.ErrNotExist)) {
		n.t.Fatalf("list %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (n *node) setAside(reason string) float64 {
	return testutil.ToFloat64(n.daemon.metrics.setAside.WithLabelValues(reason))
}

// TestCorruptCheckpointsDoNotBlockOthers: two unusable records appear in
// the checkpoint directory (one that is not JSON, one whose content is
// another attachment's). A pod's CHECK, GC and DEL still work; the two are
// moved to the quarantine directory, logged and counted, once each.
func TestCorruptCheckpointsDoNotBlockOthers(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.createPod("vnf", v1alpha1.StateActive)
	n.startDaemon(5 * time.Second)
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	good, err := os.ReadFile(filepath.Join(n.ckptDir, sandboxID+"@net1.json"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(n.ckptDir, "feedface@net1.json"), []byte("{not json"), 0o600))
	must(t, os.WriteFile(filepath.Join(n.ckptDir, "c0ffee@net1.json"), good, 0o600))

	if err := n.cni.CheckNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("CHECK with corrupt checkpoints beside: %v", err)
	}
	keep := &libcni.GCArgs{ValidAttachments: []cnitypes.GCAttachment{{ContainerID: sandboxID, IfName: "eth0"}}}
	if err := n.cni.GCNetworkList(n.ctx, n.list, keep); err != nil {
		t.Fatalf("GC with corrupt checkpoints beside: %v", err)
	}
	if drv := n.sim.Driver(dpdkPCI); drv != "uio_pci_generic" {
		t.Fatalf("GC undid a kept attachment: device on %q", drv)
	}
	if err := n.cni.DelNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("DEL with corrupt checkpoints beside: %v", err)
	}
	if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
		t.Fatalf("device on %q after DEL", drv)
	}
	q := n.quarantined()
	if len(q) != 2 || !strings.HasPrefix(q[0], "c0ffee@net1.json.") || !strings.HasPrefix(q[1], "feedface@net1.json.") {
		t.Fatalf("quarantine holds %v, want the two bad records", q)
	}
	for _, f := range []string{"feedface@net1.json", "c0ffee@net1.json", sandboxID + "@net1.json"} {
		if _, err := os.Stat(filepath.Join(n.ckptDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still in the checkpoint directory: %v", f, err)
		}
	}
	if got := n.setAside(setAsideCorrupt); got != 2 {
		t.Errorf("kuryr_daemon_checkpoints_set_aside_total{reason=corrupt} = %v, want 2", got)
	}
}

// TestRestoreRefusesADeviceNotAsRecorded: DEL gives a device back only
// when it is as its checkpoint says. A device at an address that a newer
// checkpoint names (the old device was unplugged and a new pod's device
// appeared at the same address, while the old pod's DEL was lost) is left
// alone: the old checkpoint is set aside and counted, its DEL succeeds,
// and the new pod keeps the device until its own DEL. (A device rebound to
// another driver: internal/binding TestDetachLeavesADeviceOnAnotherDriver.)
func TestRestoreRefusesADeviceNotAsRecorded(t *testing.T) {
	n := newNode(t)
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { s.Interfaces = s.Interfaces[1:] } // net1 (DPDK) only
	n.startDaemon(5 * time.Second)
	const (
		pciB, macB = "0000:02:00.0", "fa:16:3e:00:0b:01"
		macC       = "fa:16:3e:00:0c:01"
	)
	add := func(name, sandbox, mac string) *libcni.RuntimeConf {
		t.Helper()
		pod, _ := n.createPodMACs(name, v1alpha1.StateActive, eth0MAC, mac)
		rt := rtFor(pod, sandbox, n.podNS.Path())
		if _, err := n.cni.AddNetworkList(n.ctx, n.list, rt); err != nil {
			t.Fatalf("ADD of %s: %v", name, err)
		}
		return rt
	}
	driver := func(addr, want string) {
		t.Helper()
		if got := n.sim.Driver(addr); got != want {
			t.Fatalf("device %s on %q, want %s", addr, got, want)
		}
	}

	// Two checkpoints on one address: b's device is replaced by c's.
	must(t, n.sim.AddVirtioNet(pciB, macB))
	rtB := add("b", "5a0d00000000000000000000000000b1", macB)
	must(t, n.sim.Remove(pciB))
	must(t, n.sim.AddVirtioNet(pciB, macC))
	rtC := add("c", "5a0d00000000000000000000000000c1", macC)
	driver(pciB, pci.DriverUIO)
	must(t, n.cni.DelNetworkList(n.ctx, n.list, rtB))
	driver(pciB, pci.DriverUIO) // still c's
	must(t, n.cni.DelNetworkList(n.ctx, n.list, rtC))
	driver(pciB, pci.DriverVirtioPCI)
	if nd := n.sim.Netdev(pciB); nd == "" {
		t.Fatal("c's device has no netdev after its DEL")
	}

	if got := n.setAside(setAsideDeviceMismatch); got != 1 {
		t.Errorf("kuryr_daemon_checkpoints_set_aside_total{reason=device_mismatch} = %v, want 1", got)
	}
	q := n.quarantined()
	if len(q) != 1 || !strings.HasPrefix(q[0], "5a0d00000000000000000000000000b1@net1.json.") {
		t.Fatalf("quarantine holds %v, want b's checkpoint", q)
	}
	for _, sb := range []string{"5a0d00000000000000000000000000b1", "5a0d00000000000000000000000000c1"} {
		if recs := n.records(sb); len(recs) != 0 {
			t.Errorf("checkpoints of %s left: %+v", sb, recs)
		}
	}
}
