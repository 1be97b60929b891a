package pci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

var (
	// ErrDriverNotLoaded means the target driver is not registered with the
	// kernel: its module must be loaded first.
	ErrDriverNotLoaded = errors.New("driver not loaded")
	// ErrNoIOMMU means vfio-pci cannot take the device because it is in no
	// IOMMU group and vfio's no-IOMMU mode is off.
	ErrNoIOMMU = errors.New("no IOMMU group for vfio-pci")
)

// CheckDriver says whether the device can be bound to driver at all, before
// anything is changed: the driver must be loaded, and vfio-pci needs the
// device in an IOMMU group (or vfio's unsafe no-IOMMU mode). The errors say
// what to fix.
func (s *SysFS) CheckDriver(addr, driver string) error {
	if !ValidAddress(addr) {
		return fmt.Errorf("invalid PCI address %q", addr)
	}
	if !s.Exists(addr) {
		return fmt.Errorf("PCI device %s: %w", addr, ErrNoDevice)
	}
	if !s.DriverLoaded(driver) {
		return fmt.Errorf("cannot bind PCI device %s to %s: %w (%s is missing); run `modprobe %s` on the node",
			addr, driver, ErrDriverNotLoaded, s.driverPath(driver), driver)
	}
	if driver != DriverVFIO {
		return nil
	}
	info, err := s.IOMMU(addr)
	if err != nil {
		return err
	}
	switch {
	case info.Group != "" || info.NoIOMMUMode:
		return nil
	case info.Groups == 0:
		return fmt.Errorf("cannot bind PCI device %s to vfio-pci: %w: %s is empty, so this VM has no (virtual) IOMMU; "+
			"give the VM one (QEMU -device intel-iommu with intel_iommu=on on the guest kernel command line, "+
			"and iommu_platform=on on the virtio device) or use uio_pci_generic",
			addr, ErrNoIOMMU, s.path("kernel", "iommu_groups"))
	default:
		return fmt.Errorf("cannot bind PCI device %s to vfio-pci: %w: the VM has %d IOMMU groups but %s is missing, "+
			"so this device is not behind the IOMMU (hot-plug it with iommu_platform=on) or use uio_pci_generic",
			addr, ErrNoIOMMU, info.Groups, s.devicePath(addr, "iommu_group"))
	}
}

// Bind binds the device to driver and returns once the kernel reports it
// bound: unbind from the current driver, write driver to driver_override,
// write the address to drivers_probe, wait until the device's driver link
// names the target, clear driver_override. A device already bound to driver
// is left as it is (a retried ADD). Each wait is bounded by ctx and by the
// bind timeout.
func (s *SysFS) Bind(ctx context.Context, addr, driver string) error {
	if err := s.CheckDriver(addr, driver); err != nil {
		return err
	}
	cur, err := s.Driver(addr)
	if err != nil {
		return err
	}
	if cur == driver {
		return s.clearOverride(addr)
	}
	if cur != "" {
		if err := s.unbind(ctx, addr, cur); err != nil {
			return err
		}
	}
	if err := writeAttr(s.devicePath(addr, "driver_override"), driver); err != nil {
		return fmt.Errorf("set driver_override of PCI device %s to %s: %w", addr, driver, err)
	}
	probe := s.path("bus", "pci", "drivers_probe")
	err = s.writeAndWait(ctx, probe, addr, func() (bool, error) {
		d, err := s.Driver(addr)
		return d == driver, err
	})
	if err != nil {
		got, _ := s.Driver(addr)
		if got == "" {
			got = "none"
		}
		return fmt.Errorf("bind PCI device %s to %s (driver now: %s; see the kernel log): %w", addr, driver, got, err)
	}
	return s.clearOverride(addr)
}

// Unbind detaches the device from its driver, if any, and clears
// driver_override, leaving the device unbound.
func (s *SysFS) Unbind(ctx context.Context, addr string) error {
	cur, err := s.Driver(addr)
	if err != nil {
		return err
	}
	if cur != "" {
		if err := s.unbind(ctx, addr, cur); err != nil {
			return err
		}
	}
	return s.clearOverride(addr)
}

func (s *SysFS) unbind(ctx context.Context, addr, cur string) error {
	err := s.writeAndWait(ctx, s.driverPath(cur, "unbind"), addr, func() (bool, error) {
		d, err := s.Driver(addr)
		return d != cur, err
	})
	if err != nil {
		return fmt.Errorf("unbind PCI device %s from %s: %w", addr, cur, err)
	}
	return nil
}

func (s *SysFS) clearOverride(addr string) error {
	cur, err := s.DriverOverride(addr)
	if err != nil {
		return err
	}
	if cur == "" {
		return nil
	}
	if err := writeAttr(s.devicePath(addr, "driver_override"), "\n"); err != nil {
		return fmt.Errorf("clear driver_override of PCI device %s: %w", addr, err)
	}
	return nil
}

// writeAndWait writes value to a sysfs attribute and polls done until it
// holds, the bind timeout passes or ctx ends. The kernel acts on the write
// before write(2) returns, so done normally holds at the first look. While it
// does not, the write is repeated every few polls: drivers_probe and a
// driver's unbind are shared by every device, and an emulation of sysfs with
// plain files can lose a write that another writer overwrote before it was
// read (internal/testing/pcisim did, before it made those files pipes).
// Repeating it is harmless for the kernel, which ignores a probe of a bound
// device.
func (s *SysFS) writeAndWait(ctx context.Context, path, value string, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, s.bindTimeout)
	defer cancel()
	if err := writeAttr(path, value); err != nil {
		// The kernel refuses, say, an unbind of a device that another
		// writer unbound a moment ago: what counts is the state.
		if ok, derr := done(); derr == nil && ok {
			return nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	start := time.Now()
	t := time.NewTicker(s.pollInterval)
	defer t.Stop()
	var rewriteErr error // a repeated write may fail once the state moved on
	for n := 1; ; n++ {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done %s after writing %q to %s: %w",
				time.Since(start).Round(time.Millisecond), value, path, errors.Join(ctx.Err(), rewriteErr))
		case <-t.C:
		}
		if n%rewriteEvery == 0 {
			rewriteErr = writeAttr(path, value)
		}
	}
}
