package pci_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

// TestUIODevice: a device bound to uio_pci_generic has its uio device; once
// given back to virtio-pci it has none (ErrNoUIO).
func TestUIODevice(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UIODevice(addr1); !errors.Is(err, pci.ErrNoUIO) {
		t.Fatalf("UIODevice on virtio-pci: %v, want ErrNoUIO", err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if err := s.Bind(ctx, addr1, pci.DriverUIO); err != nil {
		t.Fatal(err)
	}
	got, err := s.UIODevice(addr1)
	if err != nil || got != "uio0" {
		t.Fatalf("UIODevice = %q, %v; want uio0", got, err)
	}
	if err := s.Bind(ctx, addr1, pci.DriverVirtioPCI); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UIODevice(addr1); !errors.Is(err, pci.ErrNoUIO) {
		t.Fatalf("UIODevice after rebind: %v, want ErrNoUIO", err)
	}
	if _, err := s.UIODevice("../../etc"); err == nil {
		t.Fatal("UIODevice took an invalid address")
	}
}

// TestVFIOGroupPath: the group's node is /dev/vfio/<group>, or
// /dev/vfio/noiommu-<group> where vfio made that one; a device in no group
// has none.
func TestVFIOGroupPath(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t, pcisim.WithIOMMU())
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	info, err := s.IOMMU(addr1)
	if err != nil || info.Group == "" {
		t.Fatalf("IOMMU %+v, %v", info, err)
	}
	dev := t.TempDir()
	got, err := s.VFIOGroupPath(dev, addr1)
	if err != nil || got != "/dev/vfio/"+info.Group {
		t.Fatalf("VFIOGroupPath = %q, %v; want /dev/vfio/%s", got, err, info.Group)
	}
	if err := os.MkdirAll(filepath.Join(dev, "dev", "vfio"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "dev", "vfio", "noiommu-"+info.Group), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := s.VFIOGroupPath(dev, addr1); err != nil || got != "/dev/vfio/noiommu-"+info.Group {
		t.Fatalf("VFIOGroupPath with the no-IOMMU node = %q, %v", got, err)
	}

	sim2, s2 := newSim(t)
	if err := sim2.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.VFIOGroupPath(dev, addr1); !errors.Is(err, pci.ErrNoIOMMU) {
		t.Fatalf("VFIOGroupPath without a group: %v, want ErrNoIOMMU", err)
	}
}

// TestNUMANode: -1 (a VM's usual answer) is unknown; a node number is read.
func TestNUMANode(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	if n, ok := s.NUMANode(addr1); ok {
		t.Fatalf("NUMANode = %d, known; want unknown for -1", n)
	}
	if err := os.WriteFile(filepath.Join(s.Root(), "sys", "bus", "pci", "devices", addr1, "numa_node"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, ok := s.NUMANode(addr1); !ok || n != 1 {
		t.Fatalf("NUMANode = %d, %v; want 1", n, ok)
	}
	if _, ok := s.NUMANode("0000:00:09.0"); ok {
		t.Fatal("NUMANode known for an absent device")
	}
}
