package pci_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// TestRealSysfsReadOnly runs the read side against this machine's /sys: it
// lists the PCI devices and, for every netdev of a PCI device (found through
// /sys/class/net/IFNAME/device, the other way round from FindByMAC),
// checks that FindByMAC and Netdevs agree. It writes nothing.
func TestRealSysfsReadOnly(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/sys/bus/pci/devices"); err != nil {
		if os.Getenv(netnstest.StrictEnv) == "1" {
			t.Fatalf("no PCI bus in /sys on this machine (%v); %s=1 forbids skipping", err, netnstest.StrictEnv)
		}
		t.Skipf("SKIPPED: no PCI bus in /sys on this machine: %v", err)
	}
	s := pci.New("/")
	devs, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]pci.Device{}
	for _, d := range devs {
		if !pci.ValidAddress(d.Address) {
			t.Errorf("device with invalid address %q", d.Address)
		}
		if d.Vendor == 0 || d.Vendor == 0xffff {
			t.Errorf("%s: vendor %#04x", d.Address, d.Vendor)
		}
		if d.Driver != "" && !s.DriverLoaded(d.Driver) {
			t.Errorf("%s: bound to %s, which DriverLoaded denies", d.Address, d.Driver)
		}
		info, err := s.IOMMU(d.Address)
		if err != nil {
			t.Errorf("IOMMU(%s): %v", d.Address, err)
		}
		if d.VirtioNet() && d.Driver == pci.DriverVirtioPCI && !info.AccessPlatformKnown {
			t.Errorf("%s: a virtio-net device bound to virtio-pci without readable features", d.Address)
		}
		byAddr[d.Address] = d
		t.Logf("%s %04x:%04x class %06x driver %q netdevs %v iommu group %q",
			d.Address, d.Vendor, d.Device, d.Class, d.Driver, d.Netdevs, d.IOMMUGroup)
	}
	ifaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, ifc := range ifaces {
		addr := pciParent(t, filepath.Join("/sys/class/net", ifc.Name(), "device"))
		if addr == "" {
			continue // a virtual interface
		}
		b, err := os.ReadFile(filepath.Join("/sys/class/net", ifc.Name(), "address"))
		if err != nil {
			t.Fatal(err)
		}
		mac := strings.TrimSpace(string(b))
		got, err := s.FindByMAC(mac)
		if err != nil {
			t.Errorf("FindByMAC(%s) for %s: %v", mac, ifc.Name(), err)
			continue
		}
		if got != addr {
			t.Errorf("FindByMAC(%s) = %s, but %s's device is %s", mac, got, ifc.Name(), addr)
		}
		found := false
		for _, nd := range byAddr[addr].Netdevs {
			found = found || (nd.Name == ifc.Name() && nd.MAC == mac)
		}
		if !found {
			t.Errorf("Devices: %s has netdevs %v, missing %s (%s)", addr, byAddr[addr].Netdevs, ifc.Name(), mac)
		}
		checked++
	}
	t.Logf("%d PCI devices, %d PCI netdevs cross-checked", len(devs), checked)
}

// pciParent resolves a netdev's device link and walks up to the nearest
// directory named like a PCI address; "" when there is none.
func pciParent(t *testing.T, link string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(link)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	for ; p != "/" && p != "."; p = filepath.Dir(p) {
		if pci.ValidAddress(filepath.Base(p)) {
			return filepath.Base(p)
		}
	}
	return ""
}
