package dra

import (
	"fmt"
	"sort"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// Attribute names (unqualified: the driver's domain) of a published device.
const (
	AttrPCIAddress  = "pciAddress"
	AttrMAC         = "mac"
	AttrPortID      = "portID"
	AttrNetworkID   = "networkID"
	AttrSubnetID    = "subnetID"
	AttrDPDKDrivers = "dpdkDrivers"
	AttrIOMMU       = "iommu"
	// AttrNUMANode is the standard attribute, set where the kernel knows
	// the device's NUMA node.
	AttrNUMANode = "resource.kubernetes.io/numaNode"
)

// maxDevicesPerSlice is the API's limit of devices in one ResourceSlice.
const maxDevicesPerSlice = 128

// dpdkDrivers are the DPDK drivers a device is checked against, in the
// order dpdkDrivers lists them.
var dpdkDrivers = []string{pci.DriverUIO, pci.DriverVFIO}

// DeviceName is the name of a port's device in the node's pool.
func DeviceName(portID string) string { return DeviceNamePrefix + portID }

// portOfDevice returns the port ID in a device name, and whether the name
// is one DeviceName makes of a valid port ID.
func portOfDevice(device string) (string, bool) {
	id, ok := strings.CutPrefix(device, DeviceNamePrefix)
	return id, ok && validPortID(id)
}

// validPortID says whether "port-"+id is a valid device name (a DNS label:
// a Neutron port ID, a lowercase UUID, is one).
func validPortID(id string) bool {
	return id != "" && len(validation.IsDNS1123Label(DeviceNamePrefix+id)) == 0
}

// advertised says whether a KuryrNode device belongs in the node's pool:
// Ready ones, and InUse ones a claim owns (an allocated device must not
// vanish from its slice). Devices of pods and devices being attached are
// not.
func advertised(d v1alpha1.DPDKDevice) bool {
	switch d.State {
	case v1alpha1.DPDKDeviceReady:
		return true
	case v1alpha1.DPDKDeviceInUse:
		return strings.HasPrefix(d.Owner, OwnerPrefix)
	}
	return false
}

// Skipped is a KuryrNode device that is not published, and why.
type Skipped struct {
	PortID string
	Reason string
}

// Devices builds the node's pool: each advertised KuryrNode device whose
// PCI device is present, found by the MAC of its netdev or, once a claim
// has it bound to a DPDK driver (no netdev then), by its checkpoint. Devices
// are sorted by name. skipped says which advertised devices were left out.
func Devices(node *v1alpha1.KuryrNode, sys *pci.SysFS, records []checkpoint.Record) (devices []resourceapi.Device, skipped []Skipped, err error) {
	if node == nil {
		return nil, nil, nil
	}
	iommu, err := vIOMMU(sys)
	if err != nil {
		return nil, nil, err
	}
	pcis, err := sys.Devices()
	if err != nil {
		return nil, nil, err
	}
	byMAC := map[string]string{}
	for _, p := range pcis {
		for _, nd := range p.Netdevs {
			byMAC[strings.ToLower(nd.MAC)] = p.Address
		}
	}
	byPort := map[string]string{}
	for _, r := range records {
		if r.PortID != "" && sys.Exists(r.PCIAddress) {
			byPort[r.PortID] = r.PCIAddress
		}
	}
	for _, d := range node.Status.DPDKDevices {
		if !advertised(d) {
			continue
		}
		if !validPortID(d.PortID) {
			skipped = append(skipped, Skipped{d.PortID, fmt.Sprintf("port ID %q does not make a valid device name", d.PortID)})
			continue
		}
		mac, err := pci.NormalizeMAC(d.MAC)
		if err != nil {
			skipped = append(skipped, Skipped{d.PortID, err.Error()})
			continue
		}
		if long := tooLong(d); long != "" {
			skipped = append(skipped, Skipped{d.PortID, long})
			continue
		}
		addr := byPort[d.PortID]
		if addr == "" {
			addr = byMAC[mac]
		}
		if addr == "" {
			skipped = append(skipped, Skipped{d.PortID, "no PCI device with MAC " + mac + " in this VM"})
			continue
		}
		devices = append(devices, device(d, mac, addr, iommu, sys))
	}
	sort.Slice(devices, func(i, j int) bool { return devices[i].Name < devices[j].Name })
	return devices, skipped, nil
}

// vIOMMU says whether the VM has a (virtual) IOMMU: IOMMU groups, and not
// because of vfio's no-IOMMU mode, whose groups (one per device bound to
// vfio-pci) are IOMMU groups too. Conservative: with no-IOMMU mode on, the
// answer is no, and the default driver uio_pci_generic.
func vIOMMU(sys *pci.SysFS) (bool, error) {
	groups, err := sys.IOMMUGroups()
	return groups > 0 && !sys.NoIOMMUMode(), err
}

// tooLong names a string attribute of d longer than the API allows (one
// such device would make the API server refuse the node's whole slice).
func tooLong(d v1alpha1.DPDKDevice) string {
	for name, v := range map[string]string{AttrNetworkID: d.NetworkID, AttrSubnetID: d.SubnetID} {
		if len(v) > resourceapi.DeviceAttributeMaxValueLength {
			return fmt.Sprintf("%s is %d bytes, more than the %d an attribute may hold", name, len(v), resourceapi.DeviceAttributeMaxValueLength)
		}
	}
	return ""
}

func device(d v1alpha1.DPDKDevice, mac, addr string, iommu bool, sys *pci.SysFS) resourceapi.Device {
	var usable []string
	for _, drv := range dpdkDrivers {
		if sys.CheckDriver(addr, drv) == nil {
			usable = append(usable, drv)
		}
	}
	str := func(v string) resourceapi.DeviceAttribute { return resourceapi.DeviceAttribute{StringValue: ptr.To(v)} }
	attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		AttrPCIAddress:  str(addr),
		AttrMAC:         str(mac),
		AttrPortID:      str(d.PortID),
		AttrNetworkID:   str(d.NetworkID),
		AttrSubnetID:    str(d.SubnetID),
		AttrDPDKDrivers: str(strings.Join(usable, ",")),
		AttrIOMMU:       {BoolValue: ptr.To(iommu)},
	}
	if n, ok := sys.NUMANode(addr); ok {
		attrs[AttrNUMANode] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(n))}
	}
	return resourceapi.Device{Name: DeviceName(d.PortID), Attributes: attrs}
}

// Resources is the driver's whole publication: one pool named after the
// node, in slices of at most 128 devices (one, empty, when there are none:
// an empty pool says the driver runs).
func Resources(node string, devices []resourceapi.Device) resourceslice.DriverResources {
	var slices []resourceslice.Slice
	for len(devices) > maxDevicesPerSlice {
		slices = append(slices, resourceslice.Slice{Devices: devices[:maxDevicesPerSlice]})
		devices = devices[maxDevicesPerSlice:]
	}
	slices = append(slices, resourceslice.Slice{Devices: devices})
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{node: {Slices: slices}}}
}
