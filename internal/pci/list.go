package pci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// virtioFAccessPlatform is the virtio feature bit VIRTIO_F_ACCESS_PLATFORM
// (QEMU's iommu_platform=on): the device's DMA goes through the IOMMU.
const virtioFAccessPlatform = 33

// Device is what sysfs says about one PCI device.
type Device struct {
	Address        string
	Vendor         uint16
	Device         uint16
	Class          uint32
	Driver         string // "" when unbound
	DriverOverride string // "" when unset
	IOMMUGroup     string // "" when the device is in no IOMMU group
	Netdevs        []Netdev
}

// VirtioNet reports whether the device is a virtio network device.
func (d Device) VirtioNet() bool {
	return d.Vendor == VendorVirtio && (d.Device == DeviceVirtioNetLegacy || d.Device == DeviceVirtioNetModern)
}

// Devices lists every PCI device, sorted by address.
func (s *SysFS) Devices() ([]Device, error) {
	entries, err := os.ReadDir(s.path("bus", "pci", "devices"))
	if err != nil {
		return nil, fmt.Errorf("list PCI devices: %w", err)
	}
	out := make([]Device, 0, len(entries))
	for _, e := range entries {
		d, err := s.Describe(e.Name())
		if errors.Is(err, ErrNoDevice) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}

// Describe reads one PCI device.
func (s *SysFS) Describe(addr string) (Device, error) {
	d := Device{Address: addr}
	var err error
	if d.Driver, err = s.Driver(addr); err != nil {
		return Device{}, err
	}
	vendor, err := readHex(s.devicePath(addr, "vendor"), 16)
	if err != nil {
		return Device{}, fmt.Errorf("PCI device %s: %w", addr, err)
	}
	device, err := readHex(s.devicePath(addr, "device"), 16)
	if err != nil {
		return Device{}, fmt.Errorf("PCI device %s: %w", addr, err)
	}
	class, err := readHex(s.devicePath(addr, "class"), 32)
	if err != nil {
		return Device{}, fmt.Errorf("PCI device %s: %w", addr, err)
	}
	d.Vendor, d.Device, d.Class = uint16(vendor), uint16(device), uint32(class)
	if d.DriverOverride, err = s.DriverOverride(addr); err != nil {
		return Device{}, err
	}
	if d.IOMMUGroup, err = s.iommuGroup(addr); err != nil {
		return Device{}, err
	}
	if d.Netdevs, err = s.Netdevs(addr); err != nil {
		return Device{}, err
	}
	return d, nil
}

func readHex(path string, bits int) (uint64, error) {
	v, err := readTrim(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, bits)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

// IOMMUInfo is what decides whether vfio-pci can take a device.
type IOMMUInfo struct {
	// Groups is the number of IOMMU groups the kernel has; 0 means the VM
	// has no (virtual) IOMMU or it is off.
	Groups int
	// Group is the device's IOMMU group, "" when it is in none.
	Group string
	// NoIOMMUMode is vfio's enable_unsafe_noiommu_mode (absent on kernels
	// built without it, such as Debian's).
	NoIOMMUMode bool
	// AccessPlatform reports the virtio feature VIRTIO_F_ACCESS_PLATFORM
	// (iommu_platform=on). Known only while the device is bound to
	// virtio-pci; AccessPlatformKnown says whether it was read.
	AccessPlatform      bool
	AccessPlatformKnown bool
}

// IOMMUGroups is the number of IOMMU groups the kernel has: 0 when the VM
// has no (virtual) IOMMU or it is off.
func (s *SysFS) IOMMUGroups() (int, error) {
	groups, err := os.ReadDir(s.path("kernel", "iommu_groups"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("list IOMMU groups: %w", err)
	}
	return len(groups), nil
}

// NoIOMMUMode reports vfio's enable_unsafe_noiommu_mode; false when the
// vfio module is not loaded or has no such parameter (Debian's kernels).
func (s *SysFS) NoIOMMUMode() bool {
	v, err := readTrim(s.path("module", "vfio", "parameters", "enable_unsafe_noiommu_mode"))
	return err == nil && (v == "Y" || v == "1")
}

// Drivers lists the PCI drivers registered with the kernel.
func (s *SysFS) Drivers() ([]string, error) {
	entries, err := os.ReadDir(s.path("bus", "pci", "drivers"))
	if err != nil {
		return nil, fmt.Errorf("list PCI drivers: %w", err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// IOMMU reads the IOMMU facts for one device.
func (s *SysFS) IOMMU(addr string) (IOMMUInfo, error) {
	var info IOMMUInfo
	var err error
	if !ValidAddress(addr) {
		return info, fmt.Errorf("invalid PCI address %q", addr)
	}
	if info.Groups, err = s.IOMMUGroups(); err != nil {
		return info, err
	}
	if info.Group, err = s.iommuGroup(addr); err != nil {
		return info, err
	}
	info.NoIOMMUMode = s.NoIOMMUMode()
	feats, _ := filepath.Glob(s.devicePath(addr, "virtio*", "features"))
	if len(feats) > 0 {
		if v, err := readTrim(feats[0]); err == nil && len(v) > virtioFAccessPlatform {
			info.AccessPlatformKnown = true
			info.AccessPlatform = v[virtioFAccessPlatform] == '1'
		}
	}
	return info, nil
}

func (s *SysFS) iommuGroup(addr string) (string, error) {
	link, err := os.Readlink(s.devicePath(addr, "iommu_group"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read iommu_group of PCI device %s: %w", addr, err)
	}
	return filepath.Base(link), nil
}
