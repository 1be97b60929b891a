// Package pci reads and drives the kernel's PCI sysfs interface: it finds a
// hot-plugged virtio-net device by the MAC of its netdev, tells which driver a
// device is bound to, moves a device to another driver (unbind,
// driver_override, drivers_probe) and waits until the kernel says it is
// bound, and lists devices and IOMMU facts for operators.
//
// Every path is built on a root given to New: "/" in production, a temporary
// directory holding a simulated sysfs (internal/pcisim) in tests. There are no
// package-level paths, so tests run in parallel.
package pci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// PCI IDs of virtio network devices.
const (
	// VendorVirtio is the PCI vendor ID of virtio devices (Red Hat / Qumranet).
	VendorVirtio = 0x1af4
	// DeviceVirtioNetLegacy is the transitional (legacy-capable) virtio-net
	// device ID.
	DeviceVirtioNetLegacy = 0x1000
	// DeviceVirtioNetModern is the modern-only virtio-net device ID (QEMU's
	// virtio-net-pci on a PCIe port).
	DeviceVirtioNetModern = 0x1041
)

// Kernel driver names this project binds devices to or from. The DPDK
// drivers are netconf's.
const (
	DriverVirtioPCI = "virtio-pci"
	DriverUIO       = netconf.DPDKDriverUIO
	DriverVFIO      = netconf.DPDKDriverVFIO
)

// Default timings. Hot-plugged devices appear 0.2–0.5 s after Nova returns
// and a bind takes 0.05–0.15 s on a real guest, so these leave a wide margin.
const (
	DefaultPollInterval = 20 * time.Millisecond
	DefaultBindTimeout  = 10 * time.Second
	// rewriteEvery is how many polls pass before a write that has not taken
	// effect yet is repeated (see writeAndWait).
	rewriteEvery = 10
)

// ValidAddress reports whether addr is a full, lowercase PCI address such as
// "0000:00:05.0" (netconf.PCIAddressPattern).
func ValidAddress(addr string) bool { return netconf.ValidPCIAddress(addr) }

// SysFS is the PCI part of a sysfs tree under a root directory.
type SysFS struct {
	root         string
	pollInterval time.Duration
	bindTimeout  time.Duration
}

// Option changes a SysFS built by New.
type Option func(*SysFS)

// WithPollInterval sets how often waits re-read sysfs (default 20 ms).
func WithPollInterval(d time.Duration) Option {
	return func(s *SysFS) {
		if d > 0 {
			s.pollInterval = d
		}
	}
}

// WithBindTimeout bounds each wait inside Bind and Unbind (default 10 s), on
// top of the caller's context.
func WithBindTimeout(d time.Duration) Option {
	return func(s *SysFS) {
		if d > 0 {
			s.bindTimeout = d
		}
	}
}

// New returns a SysFS for the tree under root ("/" for the running kernel).
func New(root string, opts ...Option) *SysFS {
	s := &SysFS{root: root, pollInterval: DefaultPollInterval, bindTimeout: DefaultBindTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Root is the directory the tree is read from.
func (s *SysFS) Root() string { return s.root }

func (s *SysFS) path(elem ...string) string {
	return filepath.Join(append([]string{s.root, "sys"}, elem...)...)
}

func (s *SysFS) devicePath(addr string, elem ...string) string {
	return s.path(append([]string{"bus", "pci", "devices", addr}, elem...)...)
}

func (s *SysFS) driverPath(driver string, elem ...string) string {
	return s.path(append([]string{"bus", "pci", "drivers", driver}, elem...)...)
}

// ErrNoDevice means no PCI device has the address asked for.
var ErrNoDevice = errors.New("no such PCI device")

// Exists reports whether a PCI device with this address is present.
func (s *SysFS) Exists(addr string) bool {
	_, err := os.Stat(s.devicePath(addr))
	return err == nil
}

// Driver returns the name of the driver the device is bound to, or "" when it
// is bound to none.
func (s *SysFS) Driver(addr string) (string, error) {
	if !ValidAddress(addr) {
		return "", fmt.Errorf("invalid PCI address %q", addr)
	}
	link, err := os.Readlink(s.devicePath(addr, "driver"))
	if err == nil {
		return filepath.Base(link), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read driver of PCI device %s: %w", addr, err)
	}
	if !s.Exists(addr) {
		return "", fmt.Errorf("PCI device %s: %w", addr, ErrNoDevice)
	}
	return "", nil
}

// DriverOverride returns the device's driver_override, "" when unset.
func (s *SysFS) DriverOverride(addr string) (string, error) {
	b, err := os.ReadFile(s.devicePath(addr, "driver_override"))
	if err != nil {
		return "", fmt.Errorf("read driver_override of PCI device %s: %w", addr, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "(null)" {
		v = ""
	}
	return v, nil
}

// DriverLoaded reports whether the PCI driver is registered with the kernel
// (its module is loaded or built in).
func (s *SysFS) DriverLoaded(driver string) bool {
	if driver == "" || strings.ContainsAny(driver, "/\x00") {
		return false
	}
	fi, err := os.Stat(s.driverPath(driver))
	return err == nil && fi.IsDir()
}

// readTrim reads a small sysfs attribute and trims whitespace.
func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writeAttr writes value to an existing sysfs attribute. It never creates the
// file: a missing attribute is an error, as it is on the kernel's sysfs.
func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
