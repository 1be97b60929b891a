package daemon

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// claimUID is the ResourceClaim whose device net1 is in the claim tests.
const claimUID = "5a1d6c1e-0000-4000-8000-000000000001"

// prepareClaim does on the node what the DRA driver's Prepare does to a
// claimed device (internal/dra's bind): checkpoint in the DRA directory
// under the claim's UID, bind to uio_pci_generic, device-info file in the
// device-plugin directory.
func (n *node) prepareClaim(portID string) checkpoint.Record {
	n.t.Helper()
	store, err := checkpoint.New(n.draCkptDir)
	must(n.t, err)
	dp := binding.NewDPDK(pci.New(n.sim.Root()), store, binding.DPDKOptions{
		DeviceTimeout: 5 * time.Second, DevInfoDir: filepath.Join(n.dir, binding.DeviceInfoDPDir),
	})
	mac, err := net.ParseMAC(dpdkMAC)
	must(n.t, err)
	_, err = dp.Attach(n.ctx, binding.Request{ContainerID: claimUID, IfName: "dev0", MAC: mac, PortID: portID,
		CNINetwork: v1alpha1.DRADriverName, DPDKDriver: pci.DriverUIO,
		DeviceInfoFile: filepath.Join(n.dir, binding.DeviceInfoDPDir, "claim-device.json")})
	must(n.t, err)
	rec, err := store.Get(claimUID, "dev0")
	must(n.t, err)
	return rec
}

// TestAddReportsClaimPreparedDevice: net1 is the device of a ResourceClaim
// (the controller's plan names the claim and its port). Before the claim
// is prepared on the node the ADD answers "try again later" (code 11)
// naming the claim. Once the DRA driver's Prepare has bound it (its
// checkpoint in the DRA directory), the ADD reports it: the result's PCI
// address, a device-info file for the interface, network-status with
// device-info, the KuryrPod Plugged; the device is not bound again (it
// has no netdev to be found by, and stays on the claim's driver) and CHECK
// passes. DEL removes the interface's device-info file and checkpoint and
// leaves the device bound and the claim's checkpoint in place (the claim's
// Unprepare owns the device).
func TestAddReportsClaimPreparedDevice(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(5 * time.Second)
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) {
		s.Interfaces[1].ResourceClaim = &v1alpha1.ClaimedDevice{Name: "port", UID: claimUID, PortID: "port-net1"}
	}
	n.createPod("claimed", v1alpha1.StateActive)

	_, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	cniCode(t, "ADD before the claim is prepared", err, cniapi.CodeTryAgainLater)
	if want := "ResourceClaim port"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ADD before the claim is prepared: %v, want it to name %q", err, want)
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
		t.Fatalf("the refused ADD left the device bound to %q", drv)
	}

	prepared := n.prepareClaim("port-net1")
	r, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	must(t, err)
	res, err := current.NewResultFromResult(r)
	must(t, err)
	if len(res.Interfaces) != 2 || res.Interfaces[1].Name != "net1" || res.Interfaces[1].PciID != dpdkPCI || res.Interfaces[1].Mac != dpdkMAC {
		t.Fatalf("result interfaces %+v", res.Interfaces)
	}
	if drv := n.sim.Driver(dpdkPCI); drv != pci.DriverUIO {
		t.Fatalf("claimed device bound to %q after ADD, want the claim's %s", drv, pci.DriverUIO)
	}
	devInfo := binding.DeviceInfoPath(n.dir, "default/dataplane", sandboxID, "net1")
	di, err := binding.ReadDeviceInfo(binding.DeviceInfoDir(n.dir), devInfo)
	if err != nil || di.PCI == nil || di.PCI.PCIAddress != dpdkPCI {
		t.Fatalf("device-info %s = %+v, %v", devInfo, di, err)
	}
	cni, err := checkpoint.New(n.ckptDir)
	must(t, err)
	rec, err := cni.Get(sandboxID, "net1")
	if err != nil || rec.Kind != checkpoint.KindClaimed || rec.PCIAddress != dpdkPCI || rec.Extra["claimUID"] != claimUID {
		t.Fatalf("net1's checkpoint %+v, %v; want kind %s on %s for the claim", rec, err, checkpoint.KindClaimed, dpdkPCI)
	}
	st := findStatus(n.kuryrPod("claimed"), "net1")
	if st.State != v1alpha1.StatePlugged || st.PCIAddress != dpdkPCI || st.BoundDriver != pci.DriverUIO {
		t.Fatalf("KuryrPod net1 %+v", st)
	}
	var pod corev1.Pod
	must(t, n.c.Get(n.ctx, types.NamespacedName{Namespace: "default", Name: n.podName("claimed")}, &pod))
	var ns []nadv1.NetworkStatus
	must(t, json.Unmarshal([]byte(pod.Annotations[v1alpha1.NetworkStatusAnnotation]), &ns))
	if len(ns) != 2 || ns[1].Interface != "net1" || ns[1].DeviceInfo == nil || ns[1].DeviceInfo.Pci.PciAddress != dpdkPCI {
		t.Fatalf("network-status %s", pod.Annotations[v1alpha1.NetworkStatusAnnotation])
	}
	must(t, n.cni.CheckNetworkList(n.ctx, n.list, n.rt()))

	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if drv := n.sim.Driver(dpdkPCI); drv != pci.DriverUIO {
		t.Fatalf("DEL gave the claim's device back to %q: the claim's Unprepare owns it", drv)
	}
	store, err := checkpoint.New(n.draCkptDir)
	must(t, err)
	if got, err := store.Get(claimUID, "dev0"); err != nil || got.PCIAddress != prepared.PCIAddress || got.OriginalDriver != "virtio-pci" {
		t.Fatalf("the claim's checkpoint after DEL: %+v, %v", got, err)
	}
	if _, err := os.Stat(devInfo); !os.IsNotExist(err) {
		t.Fatalf("net1's device-info %s after DEL: %v", devInfo, err)
	}
	if left := n.checkpoints(); len(left) != 0 {
		t.Fatalf("checkpoints left after DEL: %v", left)
	}
	if st := findStatus(n.kuryrPod("claimed"), "net1"); st.State != v1alpha1.StateActive {
		t.Fatalf("KuryrPod net1 after DEL %+v", st)
	}
}
