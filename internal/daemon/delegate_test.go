package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
)

// TestMultusDelegate: under Multus (daemon not primary), Multus calls
// kuryr-cni once per attachment with the NAD's config and CNI_IFNAME of that
// attachment; each call plugs that one interface, and the device-info file
// goes where Multus says (CNIDeviceInfoFile).
func TestMultusDelegate(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemonMode(30*time.Second, false)
	n.createPod("vnf", v1alpha1.StateActive)

	// The NAD's spec.config, as Multus passes it (with the capability it
	// declares for device-info).
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane","plugins":[{"type":"kuryr-cni","daemonSocket":%q,
		"driver":"nested-dpdk","subnetId":"6a2d7ffc-1c87-4d4b-9d2f-4b0f4a39d2e1","capabilities":{"CNIDeviceInfoFile":true}}]}`, n.socket)
	nc, err := libcni.NetworkConfFromBytes([]byte(conf))
	must(t, err)
	devInfo := filepath.Join(binding.DeviceInfoDir(n.dir), "dataplane-net1.json")
	rt := n.rt()
	rt.IfName = "net1"
	rt.CapabilityArgs = map[string]any{"CNIDeviceInfoFile": devInfo}

	r, err := n.cni.AddNetworkList(n.ctx, nc, rt)
	if err != nil {
		t.Fatalf("delegate ADD of net1: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	must(t, err)
	if len(res.Interfaces) != 1 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].PciID != dpdkPCI {
		t.Fatalf("delegate result %+v, want only net1 with its PCI address", res.Interfaces)
	}
	if mac, _, _ := n.podLink("eth0"); mac != "" {
		t.Fatal("a delegate call for net1 plugged eth0 too")
	}
	di, err := binding.ReadDeviceInfo(binding.DeviceInfoDir(n.dir), devInfo)
	if err != nil || di.PCI == nil || di.PCI.PCIAddress != dpdkPCI {
		t.Fatalf("device-info at Multus' path %s = %+v, %v", devInfo, di, err)
	}
	if st := findStatus(n.kuryrPod("vnf"), "net1"); st.State != v1alpha1.StatePlugged || st.BoundDriver != "uio_pci_generic" {
		t.Fatalf("net1 status %+v", st)
	}
	if st := findStatus(n.kuryrPod("vnf"), "eth0"); st.State != v1alpha1.StateActive {
		t.Fatalf("eth0 became %s though no call asked for it", st.State)
	}
	// Multus' DEL for net1 gives the device back and removes its device-info.
	must(t, n.cni.DelNetworkList(n.ctx, nc, rt))
	if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
		t.Fatalf("device bound to %q after DEL", drv)
	}
	if _, err := os.Stat(devInfo); !os.IsNotExist(err) {
		t.Fatalf("device-info still at %s: %v", devInfo, err)
	}

	// A call for an interface the pod does not have says so (bad config).
	rt.IfName = "net7"
	_, err = n.cni.AddNetworkList(n.ctx, nc, rt)
	cniCode(t, "ADD of an interface the pod lacks", err, 7)
}
