package pci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// NUMANode returns the device's NUMA node and whether the kernel knows it:
// numa_node is -1 (unknown) on most VMs, and absent on kernels without NUMA.
func (s *SysFS) NUMANode(addr string) (int, bool) {
	if !ValidAddress(addr) {
		return 0, false
	}
	v, err := readTrim(s.devicePath(addr, "numa_node"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// uioNameRE is the name of a uio device (/dev/uioN).
var uioNameRE = regexp.MustCompile(`^uio[0-9]+$`)

// ErrNoUIO means the device has no uio device: it is not bound to a uio
// driver (uio_pci_generic), or the kernel has not made it yet.
var ErrNoUIO = errors.New("no uio device")

// UIODevice returns the name of the device's uio device ("uio0" for
// /dev/uio0), which the kernel makes when uio_pci_generic takes the device
// (<device>/uio/uioN).
func (s *SysFS) UIODevice(addr string) (string, error) {
	if !ValidAddress(addr) {
		return "", fmt.Errorf("invalid PCI address %q", addr)
	}
	entries, err := os.ReadDir(s.devicePath(addr, "uio"))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("PCI device %s: %w (%s is missing)", addr, ErrNoUIO, s.devicePath(addr, "uio"))
	}
	if err != nil {
		return "", fmt.Errorf("read uio devices of PCI device %s: %w", addr, err)
	}
	for _, e := range entries {
		if uioNameRE.MatchString(e.Name()) {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("PCI device %s: %w (%s is empty)", addr, ErrNoUIO, s.devicePath(addr, "uio"))
}

// VFIOGroupPath returns the device node of the device's vfio group, relative
// to devRoot's /dev ("/dev/vfio/7", or "/dev/vfio/noiommu-7" when vfio runs
// in no-IOMMU mode and made that node): what a container needs, with
// /dev/vfio/vfio, to use a device bound to vfio-pci.
func (s *SysFS) VFIOGroupPath(devRoot, addr string) (string, error) {
	info, err := s.IOMMU(addr)
	if err != nil {
		return "", err
	}
	if info.Group == "" {
		return "", fmt.Errorf("PCI device %s: %w", addr, ErrNoIOMMU)
	}
	noiommu := "/dev/vfio/noiommu-" + info.Group
	if _, err := os.Stat(filepath.Join(devRoot, noiommu)); err == nil {
		return noiommu, nil
	}
	return "/dev/vfio/" + info.Group, nil
}
