package ctl

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// Capabilities are what a node VM offers DPDK, read from its /sys: the
// facts Check reports on and kuryr-daemon labels its Node with.
type Capabilities struct {
	// UIO: uio_pci_generic is loaded.
	UIO bool
	// VFIO: vfio-pci is loaded; VFIOType1: vfio_iommu_type1 too (DPDK
	// finds no IOMMU support without it).
	VFIO, VFIOType1 bool
	// IOMMUGroups counts the kernel's IOMMU groups: 0 without a (virtual)
	// IOMMU.
	IOMMUGroups int
	// NoIOMMU: vfio's unsafe no-IOMMU mode is on.
	NoIOMMU bool
	// HugepagesMiB are reserved, HugepagesFreeMiB of them free (every
	// page size).
	HugepagesMiB, HugepagesFreeMiB int
}

// ReadCapabilities reads a node VM's capabilities from <root>/sys.
func ReadCapabilities(root string) Capabilities {
	sys := pci.New(root)
	groups, _ := sys.IOMMUGroups()
	return Capabilities{
		UIO: sys.DriverLoaded(pci.DriverUIO), VFIO: sys.DriverLoaded(pci.DriverVFIO),
		VFIOType1: moduleLoaded(root, "vfio_iommu_type1"), IOMMUGroups: groups, NoIOMMU: sys.NoIOMMUMode(),
		HugepagesMiB: hugepages(root, "nr_hugepages"), HugepagesFreeMiB: hugepages(root, "free_hugepages"),
	}
}

// VFIOWithIOMMU says whether vfio-pci can bind devices behind a (virtual)
// IOMMU: the safe use of vfio-pci, and the one an unprivileged pod can get.
func (c Capabilities) VFIOWithIOMMU() bool { return c.VFIO && c.IOMMUGroups > 0 && c.VFIOType1 }

// VFIOUsable says whether vfio-pci can bind devices at all: behind an
// IOMMU, or in the unsafe no-IOMMU mode.
func (c Capabilities) VFIOUsable() bool { return c.VFIOWithIOMMU() || (c.VFIO && c.NoIOMMU) }

// moduleLoaded reports whether a kernel module (or built-in driver) shows
// in <root>/sys/module.
func moduleLoaded(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "sys", "module", name))
	return err == nil
}

// hugepages returns the MiB of hugepages counted by file (nr_hugepages:
// reserved; free_hugepages: free) over every page size, from
// <root>/sys/kernel/mm/hugepages/hugepages-<size>kB/<file>.
func hugepages(root, file string) int {
	dirs, _ := filepath.Glob(filepath.Join(root, "sys", "kernel", "mm", "hugepages", "hugepages-*kB"))
	total := 0
	for _, d := range dirs {
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(d), "hugepages-"), "kB"))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, file))
		if err != nil {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		total += n * kb / 1024
	}
	return total
}
