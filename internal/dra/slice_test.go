package dra

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

const (
	portA = "0b2c5d3e-1f4a-4b6c-8d9e-0a1b2c3d4e5f"
	portB = "1c3d6e4f-2a5b-4c7d-9e0f-1b2c3d4e5f60"
	portC = "2d4e7f5a-3b6c-4d8e-af10-2c3d4e5f6071"
	portD = "3e5f8a6b-4c7d-4e9f-b021-3d4e5f607182"
	macA  = "fa:16:3e:00:00:0a"
	macB  = "fa:16:3e:00:00:0b"
	macC  = "fa:16:3e:00:00:0c"
	macD  = "fa:16:3e:00:00:0d"
	pciA  = "0000:00:05.0"
	pciB  = "0000:00:06.0"
	pciC  = "0000:00:07.0"
)

func startSim(t *testing.T, opts ...pcisim.Option) *pcisim.Sim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := pcisim.Start(ctx, t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = s.Close()
		for _, e := range s.Errors() {
			t.Errorf("pcisim: %v", e)
		}
	})
	return s
}

func dev(port, mac string, state v1alpha1.DPDKDeviceState, owner string) v1alpha1.DPDKDevice {
	return v1alpha1.DPDKDevice{PortID: port, MAC: mac, NetworkID: "net-" + port[:4], SubnetID: "sub-" + port[:4], State: state, Owner: owner}
}

func str(a resourceapi.DeviceAttribute) string {
	switch {
	case a.StringValue != nil:
		return *a.StringValue
	case a.BoolValue != nil:
		if *a.BoolValue {
			return "true"
		}
		return "false"
	case a.IntValue != nil:
		b, _ := json.Marshal(*a.IntValue)
		return string(b)
	}
	return "?"
}

// TestDevicesPublishesReadyAndClaimedPorts: of a KuryrNode's devices, the
// Ready ones and the InUse ones a claim owns are published with the
// contract's attributes, found by MAC (or, once bound to a DPDK driver, by
// their checkpoint); pod-owned, attaching and absent ones are not.
func TestDevicesPublishesReadyAndClaimedPorts(t *testing.T) {
	s := startSim(t, pcisim.WithIOMMU())
	for _, d := range [][2]string{{pciA, macA}, {pciB, macB}, {pciC, macC}} {
		if err := s.AddVirtioNet(d[0], d[1]); err != nil {
			t.Fatal(err)
		}
	}
	sys := pci.New(s.Root())
	// B is a claim's and bound to vfio-pci: no netdev, found by its record.
	if err := sys.Bind(context.Background(), pciB, pci.DriverVFIO); err != nil {
		t.Fatal(err)
	}
	recs := []checkpoint.Record{{ContainerID: "claim-uid", IfName: "dev0", Kind: checkpoint.KindDPDK, PortID: portB, MAC: macB, PCIAddress: pciB}}
	node := &v1alpha1.KuryrNode{Status: v1alpha1.KuryrNodeStatus{DPDKDevices: []v1alpha1.DPDKDevice{
		dev(portA, macA, v1alpha1.DPDKDeviceReady, ""),
		dev(portB, macB, v1alpha1.DPDKDeviceInUse, "claim/claim-uid"),
		dev(portC, macC, v1alpha1.DPDKDeviceInUse, "pod/pod-uid"),
		dev(portD, macD, v1alpha1.DPDKDeviceReady, ""), // not in this VM
		dev("Not-A-Label", macD, v1alpha1.DPDKDeviceReady, ""),
		{PortID: portC, MAC: macC, NetworkID: strings.Repeat("n", 65), State: v1alpha1.DPDKDeviceReady},
	}}}
	devices, skipped, err := Devices(node, sys, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) != 2 || devices[0].Name != "port-"+portA || devices[1].Name != "port-"+portB {
		t.Fatalf("devices %v, want port-%s and port-%s", names(devices), portA, portB)
	}
	want := map[string]string{
		AttrPCIAddress: pciA, AttrMAC: macA, AttrPortID: portA, AttrNetworkID: "net-" + portA[:4],
		AttrSubnetID: "sub-" + portA[:4], AttrDPDKDrivers: "uio_pci_generic,vfio-pci", AttrIOMMU: "true",
	}
	for k, v := range want {
		if got := str(devices[0].Attributes[resourceapi.QualifiedName(k)]); got != v {
			t.Errorf("attribute %s = %q, want %q", k, got, v)
		}
	}
	if _, ok := devices[0].Attributes[AttrNUMANode]; ok {
		t.Errorf("numaNode published though the device's numa_node is -1")
	}
	if got := str(devices[1].Attributes[AttrPCIAddress]); got != pciB {
		t.Errorf("claimed device's pciAddress %q, want %s (from its checkpoint)", got, pciB)
	}
	if len(skipped) != 3 || skipped[0].PortID != portD || skipped[1].PortID != "Not-A-Label" ||
		skipped[2].PortID != portC || !strings.Contains(skipped[2].Reason, "networkID is 65 bytes") {
		t.Errorf("skipped %+v, want %s (absent), the invalid port ID and %s (networkID too long)", skipped, portD, portC)
	}
}

// TestDevicesWithoutIOMMU: without a vIOMMU, vfio-pci is not among a
// device's usable drivers and iommu is false.
func TestDevicesWithoutIOMMU(t *testing.T) {
	s := startSim(t)
	devicesWithoutIOMMU(t, s, "uio_pci_generic")
}

// TestDevicesNoIOMMUMode: with vfio's no-IOMMU mode, vfio-pci can take
// the device but iommu is false, even once vfio's no-IOMMU groups exist.
func TestDevicesNoIOMMUMode(t *testing.T) {
	s := startSim(t, pcisim.WithNoIOMMUMode())
	// A no-IOMMU group, as vfio makes one for a device it takes.
	must(t, os.MkdirAll(filepath.Join(s.Root(), "sys", "kernel", "iommu_groups", "0"), 0o755))
	devicesWithoutIOMMU(t, s, "uio_pci_generic,vfio-pci")
}

func devicesWithoutIOMMU(t *testing.T, s *pcisim.Sim, drivers string) {
	t.Helper()
	if err := s.AddVirtioNet(pciA, macA); err != nil {
		t.Fatal(err)
	}
	node := &v1alpha1.KuryrNode{Status: v1alpha1.KuryrNodeStatus{DPDKDevices: []v1alpha1.DPDKDevice{dev(portA, macA, v1alpha1.DPDKDeviceReady, "")}}}
	devices, _, err := Devices(node, pci.New(s.Root()), nil)
	if err != nil || len(devices) != 1 {
		t.Fatalf("devices %v, err %v", names(devices), err)
	}
	if got := str(devices[0].Attributes[AttrDPDKDrivers]); got != drivers {
		t.Errorf("dpdkDrivers %q, want %s", got, drivers)
	}
	if got := str(devices[0].Attributes[AttrIOMMU]); got != "false" {
		t.Errorf("iommu %q, want false", got)
	}
}

func names(ds []resourceapi.Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

// TestResourcesSplitsAt128: one pool named after the node, slices of at
// most 128 devices, and one empty slice when there is no device.
func TestResourcesSplitsAt128(t *testing.T) {
	r := Resources("node-a", nil)
	if p, ok := r.Pools["node-a"]; !ok || len(p.Slices) != 1 || len(p.Slices[0].Devices) != 0 {
		t.Fatalf("no devices: %+v, want one empty slice in pool node-a", r)
	}
	r = Resources("node-a", make([]resourceapi.Device, 300))
	var sizes []int
	for _, s := range r.Pools["node-a"].Slices {
		sizes = append(sizes, len(s.Devices))
	}
	if len(sizes) != 3 || sizes[0] != 128 || sizes[1] != 128 || sizes[2] != 44 {
		t.Fatalf("slice sizes %v, want [128 128 44]", sizes)
	}
}

// TestConfigFor: the class's config, then the claim's, each for the
// request (or all requests) it names; unknown fields and drivers fail.
func TestConfigFor(t *testing.T) {
	op := func(src resourceapi.AllocationConfigSource, params string, reqs ...string) resourceapi.DeviceAllocationConfiguration {
		return resourceapi.DeviceAllocationConfiguration{Source: src, Requests: reqs, DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: DriverName, Parameters: runtime.RawExtension{Raw: []byte(params)}}}}
	}
	class, claim := resourceapi.AllocationConfigSourceClass, resourceapi.AllocationConfigSourceClaim
	other := op(claim, `{"driver":"bogus"}`)
	other.Opaque.Driver = "other.example.com"
	for _, tc := range []struct {
		name    string
		cfgs    []resourceapi.DeviceAllocationConfiguration
		request string
		want    string
		err     string
	}{
		{name: "none", request: "port"},
		{name: "claim after class", cfgs: []resourceapi.DeviceAllocationConfiguration{
			op(claim, `{"driver":"uio_pci_generic"}`), op(class, `{"driver":"vfio-pci"}`)}, request: "port", want: "uio_pci_generic"},
		{name: "other request", cfgs: []resourceapi.DeviceAllocationConfiguration{op(claim, `{"driver":"uio_pci_generic"}`, "b")}, request: "port"},
		{name: "subrequest", cfgs: []resourceapi.DeviceAllocationConfiguration{op(claim, `{"driver":"vfio-pci"}`, "port")}, request: "port/fast", want: "vfio-pci"},
		{name: "other driver's", cfgs: []resourceapi.DeviceAllocationConfiguration{other}, request: "port"},
		{name: "unknown field", cfgs: []resourceapi.DeviceAllocationConfiguration{op(claim, `{"drivr":"vfio-pci"}`)}, request: "port", err: "unknown field"},
		{name: "unknown driver", cfgs: []resourceapi.DeviceAllocationConfiguration{op(claim, `{"driver":"igb_uio"}`)}, request: "port", err: `"igb_uio" is not`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configFor(tc.cfgs, tc.request)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got.Driver != tc.want {
				t.Fatalf("driver %q, err %v; want %q", got.Driver, err, tc.want)
			}
		})
	}
}

// TestDeviceUevent: add, remove, bind and unbind uevents of the pci, virtio
// and net subsystems count; others do not.
func TestDeviceUevent(t *testing.T) {
	for msg, want := range map[string]bool{
		"add@/devices/pci0000:00/0000:00:05.0\x00ACTION=add\x00SUBSYSTEM=pci\x00":       true,
		"unbind@/devices/pci0000:00/0000:00:05.0\x00ACTION=unbind\x00SUBSYSTEM=pci\x00": true,
		"add@/devices/virtual/net/veth0\x00ACTION=add\x00SUBSYSTEM=net\x00":             true,
		"add@/devices/virtual/block/loop0\x00ACTION=add\x00SUBSYSTEM=block\x00":         false,
		"change@/devices/pci0000:00/0000:00:05.0\x00SUBSYSTEM=pci\x00":                  false,
		"libudev\x00garbage": false,
	} {
		if got := deviceUevent([]byte(msg)); got != want {
			t.Errorf("deviceUevent(%q) = %v, want %v", msg, got, want)
		}
	}
}
