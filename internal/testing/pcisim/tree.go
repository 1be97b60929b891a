package pcisim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// layoutBus creates the parts of /sys that exist before any device.
func (s *Sim) layoutBus() error {
	for _, d := range [][]string{
		{"bus", "pci", "devices"},
		{"bus", "pci", "drivers"},
		{"bus", "pci", "slots"},
		{"bus", "virtio", "drivers", "virtio_net"},
		{"bus", "virtio", "devices"},
		{"class", "net"},
		{"devices", "pci0000:00"},
		{"kernel", "iommu_groups"},
	} {
		if err := os.MkdirAll(s.sys(d...), 0o755); err != nil {
			return fmt.Errorf("pcisim: %w", err)
		}
	}
	for name, content := range map[string]string{"drivers_autoprobe": "1\n", "rescan": ""} {
		if err := writeFile(s.sys("bus", "pci", name), content); err != nil {
			return err
		}
	}
	if err := s.makeShared(s.sys("bus", "pci", "drivers_probe"), "", "drivers_probe"); err != nil {
		return err
	}
	if s.noIOMMU {
		params := s.sys("module", "vfio", "parameters")
		if err := os.MkdirAll(params, 0o755); err != nil {
			return fmt.Errorf("pcisim: %w", err)
		}
		if err := writeFile(filepath.Join(params, "enable_unsafe_noiommu_mode"), "Y\n"); err != nil {
			return err
		}
	}
	return s.ino.watch(s.sys("bus", "pci"), s.watches, "")
}

func writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	return nil
}

// symlink makes link point at target given relative to /sys, written as a
// relative path the way sysfs does.
func (s *Sim) symlink(target string, link ...string) error {
	l := s.sys(link...)
	rel, err := filepath.Rel(filepath.Dir(l), s.sys(target))
	if err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	_ = os.Remove(l)
	if err := os.Symlink(rel, l); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	return nil
}

func (s *Sim) loadDriverLocked(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("pcisim: bad driver name %q", name)
	}
	if _, ok := s.drivers[name]; ok {
		return nil
	}
	dir := s.sys("bus", "pci", "drivers", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	for _, f := range []string{"bind", "unbind", "new_id", "remove_id", "uevent"} {
		if sharedNames[f] {
			if err := s.makeShared(filepath.Join(dir, f), name, f); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			return fmt.Errorf("pcisim: %w", err)
		}
	}
	if err := s.ino.watch(dir, s.watches, name); err != nil {
		return err
	}
	s.drivers[name] = &driver{name: name}
	s.order = append(s.order, name)
	return nil
}

// devRel is the device's real directory relative to /sys.
func devRel(addr string) string {
	m := addrRE.FindStringSubmatch(addr)
	return filepath.Join("devices", "pci"+m[1]+":"+m[2], addr)
}

// ifName names the netdev as systemd's predictable names would (enp0s5).
func ifName(addr string) string {
	m := addrRE.FindStringSubmatch(addr)
	bus, _ := strconv.ParseUint(m[2], 16, 8)
	slot, _ := strconv.ParseUint(m[3], 16, 8)
	name := fmt.Sprintf("enp%ds%d", bus, slot)
	if m[4] != "0" {
		name += "f" + m[4]
	}
	return name
}

func (s *Sim) addDeviceLocked(addr, mac string, deviceID uint16) error {
	if !addrRE.MatchString(addr) {
		return fmt.Errorf("pcisim: bad PCI address %q", addr)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("pcisim: bad MAC %q: %w", mac, err)
	}
	if _, ok := s.devices[addr]; ok {
		return fmt.Errorf("pcisim: device %s already present", addr)
	}
	d := &device{addr: addr, mac: hw.String(), ifname: ifName(addr), vendor: VendorVirtio, devid: deviceID, virtio: -1, uio: -1, group: -1}
	rel := devRel(addr)
	if err := os.MkdirAll(s.sys(rel), 0o755); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	files := map[string]string{
		"vendor":           fmt.Sprintf("0x%04x\n", d.vendor),
		"device":           fmt.Sprintf("0x%04x\n", d.devid),
		"subsystem_vendor": fmt.Sprintf("0x%04x\n", VendorVirtio),
		"subsystem_device": "0x0001\n",
		"class":            "0x020000\n",
		"driver_override":  "(null)\n",
		"enable":           "1\n",
		"numa_node":        "-1\n",
		"uevent":           s.uevent(d),
		"remove":           "",
	}
	for name, content := range files {
		if err := writeFile(filepath.Join(s.sys(rel), name), content); err != nil {
			return err
		}
	}
	if err := s.symlink("bus/pci", rel, "subsystem"); err != nil {
		return err
	}
	if s.iommu {
		if err := s.addGroupLocked(d); err != nil {
			return err
		}
	}
	if err := s.symlink(rel, "bus", "pci", "devices", addr); err != nil {
		return err
	}
	s.devices[addr] = d
	s.probeLocked(d)
	return nil
}

func (s *Sim) addGroupLocked(d *device) error {
	g := s.nextGroup
	s.nextGroup++
	gdir := filepath.Join("kernel", "iommu_groups", strconv.Itoa(g))
	if err := os.MkdirAll(s.sys(gdir, "devices"), 0o755); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	if err := writeFile(s.sys(gdir, "type"), "DMA\n"); err != nil {
		return err
	}
	if err := s.symlink(devRel(d.addr), gdir, "devices", d.addr); err != nil {
		return err
	}
	if err := s.symlink(gdir, devRel(d.addr), "iommu_group"); err != nil {
		return err
	}
	d.group = g
	return nil
}

func (s *Sim) uevent(d *device) string {
	var b strings.Builder
	if d.driver != "" {
		fmt.Fprintf(&b, "DRIVER=%s\n", d.driver)
	}
	fmt.Fprintf(&b, "PCI_CLASS=20000\nPCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:0001\nPCI_SLOT_NAME=%s\n",
		d.vendor, d.devid, VendorVirtio, d.addr)
	return b.String()
}

func (s *Sim) removeDeviceTree(d *device) error {
	var errs []error
	errs = append(errs, os.Remove(s.sys("bus", "pci", "devices", d.addr)))
	errs = append(errs, os.RemoveAll(s.sys(devRel(d.addr))))
	if d.group >= 0 {
		errs = append(errs, os.RemoveAll(s.sys("kernel", "iommu_groups", strconv.Itoa(d.group))))
	}
	return errors.Join(errs...)
}

// override reads the device's driver_override as the kernel holds it.
func (s *Sim) override(d *device) string {
	b, err := os.ReadFile(filepath.Join(s.sys(devRel(d.addr)), "driver_override"))
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(b))
	if v == "(null)" {
		return ""
	}
	return v
}

// matches is pci_bus_match: driver_override wins; otherwise virtio-pci takes
// any virtio vendor device and other drivers only their new_id entries.
func (s *Sim) matches(d *device, drv *driver) bool {
	if o := s.override(d); o != "" {
		return o == drv.name
	}
	if drv.name == DriverVirtioPCI && d.vendor == VendorVirtio {
		return true
	}
	for _, id := range drv.ids {
		if id[0] == d.vendor && id[1] == d.devid {
			return true
		}
	}
	return false
}

// probeLocked binds an unbound device to the first loaded driver that
// matches it and whose probe succeeds (drivers_probe, hot-plug).
func (s *Sim) probeLocked(d *device) {
	if d.driver != "" {
		return
	}
	for _, name := range s.order {
		if drv := s.drivers[name]; s.matches(d, drv) && s.probeOK(d, drv) {
			s.bindLocked(d, drv)
			return
		}
	}
}

// probeOK is the driver's own probe: vfio-pci refuses a device in no IOMMU
// group, as the kernel's does, and WithProbeFailure drivers refuse all.
func (s *Sim) probeOK(d *device, drv *driver) bool {
	if slices.Contains(s.failProbe, drv.name) {
		return false
	}
	return drv.name != DriverVFIO || d.group >= 0 || s.noIOMMU
}

// attachDriverLocked is driver_attach: a new driver or new ID takes the
// unbound devices it matches.
func (s *Sim) attachDriverLocked(name string) {
	drv, ok := s.drivers[name]
	if !ok {
		return
	}
	for _, d := range s.sortedDevices() {
		if d.driver == "" && s.matches(d, drv) && s.probeOK(d, drv) {
			s.bindLocked(d, drv)
		}
	}
}

func (s *Sim) bindLocked(d *device, drv *driver) {
	rel := devRel(d.addr)
	if drv.name == DriverUIO {
		// uio_pci_generic's probe registers a uio device, <device>/uio/uioN
		// (the kernel's name for /dev/uioN), before the kernel links the
		// device to its driver.
		if err := os.MkdirAll(filepath.Join(s.sys(rel), "uio", fmt.Sprintf("uio%d", s.nextUIO)), 0o755); err != nil {
			s.recordErr(err)
			return
		}
		if s.uioNodes {
			if err := s.mknodUIO(s.nextUIO); err != nil {
				s.recordErr(err)
			}
		}
		d.uio = s.nextUIO
		s.nextUIO++
	}
	if err := s.symlink(filepath.Join("bus", "pci", "drivers", drv.name), rel, "driver"); err != nil {
		s.recordErr(err)
		return
	}
	if err := s.symlink(rel, "bus", "pci", "drivers", drv.name, d.addr); err != nil {
		s.recordErr(err)
	}
	d.driver = drv.name
	if err := writeFile(filepath.Join(s.sys(rel), "uevent"), s.uevent(d)); err != nil {
		s.recordErr(err)
	}
	if drv.name == DriverVirtioPCI {
		if err := s.addNetdevLocked(d); err != nil {
			s.recordErr(err)
		}
	}
}

func (s *Sim) unbindLocked(d *device) {
	rel := devRel(d.addr)
	if d.virtio >= 0 {
		s.removeNetdevLocked(d)
	}
	if d.uio >= 0 {
		_ = os.RemoveAll(filepath.Join(s.sys(rel), "uio"))
		if s.uioNodes {
			_ = os.Remove(s.uioNode(d.uio))
		}
		d.uio = -1
	}
	_ = os.Remove(s.sys("bus", "pci", "drivers", d.driver, d.addr))
	_ = os.Remove(filepath.Join(s.sys(rel), "driver"))
	d.driver = ""
	if err := writeFile(filepath.Join(s.sys(rel), "uevent"), s.uevent(d)); err != nil {
		s.recordErr(err)
	}
}

// addNetdevLocked creates the virtioN child and its netdev, as virtio-pci
// and virtio_net do on probe.
func (s *Sim) addNetdevLocked(d *device) error {
	n := 0
	for s.virtioIDs[n] {
		n++
	}
	s.virtioIDs[n] = true
	d.virtio = n
	vrel := filepath.Join(devRel(d.addr), "virtio"+strconv.Itoa(n))
	nrel := filepath.Join(vrel, "net", d.ifname)
	if err := os.MkdirAll(s.sys(nrel), 0o755); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	features := []byte(strings.Repeat("0", 64))
	for _, bit := range []int{0, 1, 5, 16, 32} { // CSUM, GUEST_CSUM, MAC, STATUS, VERSION_1
		features[bit] = '1'
	}
	if s.iommu {
		features[33] = '1' // ACCESS_PLATFORM
	}
	vfiles := map[string]string{
		"device":   "0x0001\n",
		"vendor":   "0x554d4551\n",
		"features": string(features) + "\n",
		"status":   "0x0000000f\n",
	}
	for name, content := range vfiles {
		if err := writeFile(filepath.Join(s.sys(vrel), name), content); err != nil {
			return err
		}
	}
	ifindex := s.nextIndex
	s.nextIndex++
	nfiles := map[string]string{
		"address":   d.mac + "\n",
		"addr_len":  "6\n",
		"ifindex":   strconv.Itoa(ifindex) + "\n",
		"mtu":       "1500\n",
		"operstate": "down\n",
		"type":      "1\n",
		"uevent":    fmt.Sprintf("INTERFACE=%s\nIFINDEX=%d\n", d.ifname, ifindex),
	}
	for name, content := range nfiles {
		if err := writeFile(filepath.Join(s.sys(nrel), name), content); err != nil {
			return err
		}
	}
	for _, l := range []struct{ target, link string }{
		{"bus/virtio/drivers/virtio_net", filepath.Join(vrel, "driver")},
		{"bus/virtio", filepath.Join(vrel, "subsystem")},
		{"class/net", filepath.Join(nrel, "subsystem")},
		{vrel, filepath.Join("bus", "virtio", "devices", "virtio"+strconv.Itoa(n))},
		{nrel, filepath.Join("class", "net", d.ifname)},
	} {
		if err := s.symlink(l.target, l.link); err != nil {
			return err
		}
	}
	// The kernel writes this link to an ancestor the long way round.
	if err := os.Symlink("../../../virtio"+strconv.Itoa(n), s.sys(nrel, "device")); err != nil {
		return fmt.Errorf("pcisim: %w", err)
	}
	s.notify(NetdevEvent{Addr: d.addr, IfName: d.ifname, MAC: d.mac, Appeared: true})
	return nil
}

func (s *Sim) removeNetdevLocked(d *device) {
	n := d.virtio
	_ = os.Remove(s.sys("class", "net", d.ifname))
	_ = os.Remove(s.sys("bus", "virtio", "devices", "virtio"+strconv.Itoa(n)))
	if err := os.RemoveAll(s.sys(devRel(d.addr), "virtio"+strconv.Itoa(n))); err != nil {
		s.recordErr(err)
	}
	delete(s.virtioIDs, n)
	d.virtio = -1
	s.notify(NetdevEvent{Addr: d.addr, IfName: d.ifname, MAC: d.mac, Appeared: false})
}

func (s *Sim) notify(ev NetdevEvent) {
	if s.hook == nil {
		return
	}
	if err := s.hook(ev); err != nil {
		s.recordErr(fmt.Errorf("pcisim: netdev hook for %s (%s): %w", ev.IfName, ev.Addr, err))
	}
}

// uioNode is the path of the node standing in for /dev/uioN.
func (s *Sim) uioNode(n int) string { return filepath.Join(s.root, "dev", fmt.Sprintf("uio%d", n)) }

// mknodUIO makes the character device node standing in for /dev/uioN
// (WithUIODevNodes).
func (s *Sim) mknodUIO(n int) error {
	p := s.uioNode(n)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	_ = os.Remove(p)
	if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(UIODevMajor, uint32(n)))); err != nil {
		return fmt.Errorf("mknod %s: %w", p, err)
	}
	return nil
}
