// Package ctl is kuryrctl's logic: the node prerequisites check and the
// operator's views of pods' interfaces and of the node's PCI devices.
package ctl

import (
	"fmt"
	"io"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// Level says how bad a finding is.
type Level string

// Levels of a finding.
const (
	OK   Level = "ok"
	Warn Level = "warn"
	Fail Level = "FAIL"
)

// Finding is one line of the prerequisites report.
type Finding struct {
	Level Level
	What  string
	// Detail says what was seen and, when not OK, what to do.
	Detail string
}

// Report is the result of Check.
type Report struct {
	Findings []Finding
}

// OK reports whether nothing failed (warnings allowed).
func (r Report) OK() bool {
	for _, f := range r.Findings {
		if f.Level == Fail {
			return false
		}
	}
	return true
}

// Write prints the report, one finding a line.
func (r Report) Write(w io.Writer) {
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%-4s  %-28s %s\n", f.Level, f.What, f.Detail)
	}
}

func (r *Report) add(l Level, what, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Level: l, What: what, Detail: fmt.Sprintf(format, args...)})
}

// Check looks at a node VM (its /sys under root) for what nested-dpdk
// needs: hugepages, a DPDK driver that can work here (uio_pci_generic, or
// vfio-pci with a virtual IOMMU), and virtio devices fit for that driver.
func Check(root string) Report {
	var r Report
	sys := pci.New(root)
	c := ReadCapabilities(root)

	if c.HugepagesMiB == 0 {
		r.add(Fail, "hugepages", "none reserved: DPDK needs them (echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages, or hugepages= on the kernel command line)")
	} else {
		r.add(OK, "hugepages", "%d MiB reserved", c.HugepagesMiB)
	}

	if c.UIO {
		r.add(OK, "uio_pci_generic", "loaded (the default DPDK driver)")
	} else {
		r.add(Warn, "uio_pci_generic", "not loaded: modprobe uio_pci_generic (the default DPDK driver)")
	}

	groups := c.IOMMUGroups
	switch {
	case groups > 0 && c.VFIO && !c.VFIOType1:
		r.add(Warn, "vfio-pci", "loaded with %d IOMMU groups, but vfio_iommu_type1 is not: modprobe vfio_iommu_type1 (DPDK finds no IOMMU support without it)", groups)
	case groups > 0 && c.VFIO:
		r.add(OK, "vfio-pci", "loaded, %d IOMMU groups (a virtual IOMMU is present)", groups)
	case groups > 0:
		r.add(Warn, "vfio-pci", "not loaded (modprobe vfio-pci vfio_iommu_type1); the VM has an IOMMU, so it could be used")
	case c.NoIOMMU:
		r.add(Warn, "vfio-pci", "no IOMMU; vfio's unsafe no-IOMMU mode is on: prefer uio_pci_generic")
	default:
		r.add(Warn, "vfio-pci", "unusable: the VM has no IOMMU (give it intel-iommu and intel_iommu=on) and this kernel has no vfio no-IOMMU mode; use uio_pci_generic")
	}
	if !c.UIO && !(groups > 0 && c.VFIO) {
		r.add(Fail, "DPDK driver", "neither uio_pci_generic nor vfio-pci can bind devices on this node")
	}

	devs, err := sys.Devices()
	if err != nil {
		r.add(Fail, "PCI devices", "%v", err)
		return r
	}
	n := 0
	for _, d := range devs {
		if !d.VirtioNet() {
			continue
		}
		n++
		what := "virtio " + d.Address
		info, err := sys.IOMMU(d.Address)
		switch {
		case err != nil:
			r.add(Warn, what, "driver %q; IOMMU facts unreadable: %v", d.Driver, err)
		case groups > 0 && info.AccessPlatformKnown && !info.AccessPlatform:
			r.add(Warn, what, "driver %q; without iommu_platform=on, DPDK through vfio-pci can hang the guest: use uio_pci_generic for it", d.Driver)
		default:
			r.add(OK, what, "driver %q%s", d.Driver, netdevs(d))
		}
	}
	r.add(OK, "virtio-net devices", "%d", n)
	return r
}

func netdevs(d pci.Device) string {
	var names []string
	for _, n := range d.Netdevs {
		names = append(names, n.Name+" "+n.MAC)
	}
	if len(names) == 0 {
		return ""
	}
	return ", netdev " + strings.Join(names, ", ")
}
