package pcisim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

const (
	addr = "0000:00:05.0"
	mac  = "fa:16:3e:aa:bb:cc"
)

func start(t *testing.T, opts ...Option) *Sim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, t.TempDir(), opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func write(t *testing.T, path, v string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(v); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, path string) string {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return l
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestLayoutMatchesRealSysfs checks the tree against the link texts and
// files of a real guest's virtio-net device (taken from a Debian VM's
// /sys/devices/pci0000:00/0000:00:03.0).
func TestLayoutMatchesRealSysfs(t *testing.T) {
	t.Parallel()
	s := start(t)
	if err := s.AddVirtioNet(addr, mac); err != nil {
		t.Fatal(err)
	}
	sys := s.sys()
	for path, want := range map[string]string{
		"bus/pci/devices/" + addr:                                      "../../../devices/pci0000:00/" + addr,
		"devices/pci0000:00/" + addr + "/driver":                       "../../../bus/pci/drivers/virtio-pci",
		"devices/pci0000:00/" + addr + "/subsystem":                    "../../../bus/pci",
		"bus/pci/drivers/virtio-pci/" + addr:                           "../../../../devices/pci0000:00/" + addr,
		"class/net/enp0s5":                                             "../../devices/pci0000:00/" + addr + "/virtio0/net/enp0s5",
		"devices/pci0000:00/" + addr + "/virtio0/driver":               "../../../../bus/virtio/drivers/virtio_net",
		"devices/pci0000:00/" + addr + "/virtio0/net/enp0s5/device":    "../../../virtio0",
		"devices/pci0000:00/" + addr + "/virtio0/net/enp0s5/subsystem": "../../../../../../class/net",
	} {
		if got := link(t, filepath.Join(sys, path)); got != want {
			t.Errorf("%s -> %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"bus/pci/devices/" + addr + "/vendor":                     "0x1af4\n",
		"bus/pci/devices/" + addr + "/device":                     "0x1041\n",
		"bus/pci/devices/" + addr + "/class":                      "0x020000\n",
		"bus/pci/devices/" + addr + "/driver_override":            "(null)\n",
		"class/net/enp0s5/address":                                mac + "\n",
		"bus/pci/devices/" + addr + "/virtio0/net/enp0s5/address": mac + "\n",
	} {
		b, err := os.ReadFile(filepath.Join(sys, path))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	for _, f := range []string{"bus/pci/drivers_probe", "bus/pci/drivers/uio_pci_generic/bind",
		"bus/pci/drivers/uio_pci_generic/unbind", "bus/pci/drivers/vfio-pci/new_id"} {
		if !exists(filepath.Join(sys, f)) {
			t.Errorf("%s missing", f)
		}
	}
	if exists(filepath.Join(sys, "devices/pci0000:00", addr, "iommu_group")) {
		t.Error("iommu_group link without WithIOMMU")
	}
}

func TestUnbindOverrideProbeAndBack(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []NetdevEvent
	s := start(t, WithNetdevHook(func(ev NetdevEvent) error {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		return nil
	}))
	if err := s.AddVirtioNet(addr, mac); err != nil {
		t.Fatal(err)
	}
	dev := s.sys("bus", "pci", "devices", addr)
	write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "unbind"), addr)
	eventually(t, "unbind", func() bool { return link(t, filepath.Join(dev, "driver")) == "" })
	if exists(s.sys("class", "net", "enp0s5")) || exists(filepath.Join(dev, "virtio0")) {
		t.Error("netdev still present after unbind")
	}
	if exists(s.sys("bus", "pci", "drivers", DriverVirtioPCI, addr)) {
		t.Error("driver's device link still present after unbind")
	}

	write(t, filepath.Join(dev, "driver_override"), DriverUIO)
	write(t, s.sys("bus", "pci", "drivers_probe"), addr)
	eventually(t, "bind to uio", func() bool { return s.Driver(addr) == DriverUIO })
	if got := link(t, filepath.Join(dev, "driver")); got != "../../../bus/pci/drivers/uio_pci_generic" {
		t.Errorf("driver link %q", got)
	}
	if s.Netdev(addr) != "" {
		t.Error("netdev while bound to uio")
	}

	write(t, s.sys("bus", "pci", "drivers", DriverUIO, "unbind"), addr)
	// As internal/pci does, wait for the unbind before the probe: the
	// simulator may act on the probe's write before its close, ahead of
	// the unbind (shared.go), where the kernel acts within write(2).
	eventually(t, "unbind from uio", func() bool { return s.Driver(addr) == "" })
	write(t, filepath.Join(dev, "driver_override"), DriverVirtioPCI)
	write(t, s.sys("bus", "pci", "drivers_probe"), addr)
	eventually(t, "rebind to virtio-pci", func() bool { return s.Netdev(addr) == "enp0s5" })
	if b, _ := os.ReadFile(s.sys("class", "net", "enp0s5", "address")); string(b) != mac+"\n" {
		t.Errorf("netdev address after rebind = %q", b)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []bool{true, false, true}
	if len(events) != len(want) {
		t.Fatalf("hook events = %+v, want appeared/vanished/appeared", events)
	}
	for i, ev := range events {
		if ev.Appeared != want[i] || ev.Addr != addr || ev.MAC != mac || ev.IfName != "enp0s5" {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
}

func TestProbeToMissingDriverLeavesUnbound(t *testing.T) {
	t.Parallel()
	s := start(t, WithDrivers(DriverVirtioPCI))
	const other = "0000:00:06.0"
	if err := s.AddVirtioNet(addr, mac); err != nil {
		t.Fatal(err)
	}
	if err := s.AddVirtioNet(other, "fa:16:3e:aa:bb:dd"); err != nil {
		t.Fatal(err)
	}
	dev := s.sys("bus", "pci", "devices", addr)
	write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "unbind"), addr)
	eventually(t, "unbind", func() bool { return s.Driver(addr) == "" })
	write(t, filepath.Join(dev, "driver_override"), DriverUIO)
	write(t, s.sys("bus", "pci", "drivers_probe"), addr)
	// A barrier through the same pipe, which is read in order: once a later
	// probe of another (unbound) device has bound it, the probe above has
	// been handled too. (Writes to different files may be handled out of
	// order: shared.go.)
	write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "unbind"), other)
	eventually(t, "other unbound", func() bool { return s.Driver(other) == "" })
	write(t, s.sys("bus", "pci", "drivers_probe"), other)
	eventually(t, "barrier", func() bool { return s.Driver(other) == DriverVirtioPCI })
	if d := s.Driver(addr); d != "" {
		t.Fatalf("bound to %q although uio_pci_generic is not loaded", d)
	}
	// modprobe: loading the driver attaches it to the device whose
	// driver_override names it, as the kernel's driver_attach does.
	if err := s.LoadDriver(DriverUIO); err != nil {
		t.Fatal(err)
	}
	if d := s.Driver(addr); d != DriverUIO {
		t.Errorf("after LoadDriver: driver %q", d)
	}
}

// TestConcurrentWritesToSharedFilesAllTakeEffect: 24 writers write once
// each, at the same moment, to a driver's shared unbind file, then to
// drivers_probe (after their own driver_override): every write takes
// effect, none is lost to another writer's, as in the kernel. Nobody
// writes twice.
func TestConcurrentWritesToSharedFilesAllTakeEffect(t *testing.T) {
	t.Parallel()
	s := start(t)
	const n = 24
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = fmt.Sprintf("0000:00:%02x.0", i+4)
		if err := s.AddVirtioNet(addrs[i], fmt.Sprintf("fa:16:3e:00:02:%02x", i)); err != nil {
			t.Fatal(err)
		}
	}
	all := func(f func(a string)) {
		var wg sync.WaitGroup
		ready := make(chan struct{})
		for _, a := range addrs {
			wg.Go(func() {
				<-ready
				f(a)
			})
		}
		close(ready)
		wg.Wait()
	}
	all(func(a string) { write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "unbind"), a) })
	eventually(t, "every device unbound", func() bool {
		for _, a := range addrs {
			if s.Driver(a) != "" {
				return false
			}
		}
		return true
	})
	all(func(a string) {
		write(t, s.sys("bus", "pci", "devices", a, "driver_override"), DriverUIO)
		write(t, s.sys("bus", "pci", "drivers_probe"), a)
	})
	eventually(t, "every device bound to uio_pci_generic", func() bool {
		for _, a := range addrs {
			if s.Driver(a) != DriverUIO {
				return false
			}
		}
		return true
	})
	if errs := s.Errors(); len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
}

func TestBindFileAndNewID(t *testing.T) {
	t.Parallel()
	s := start(t)
	if err := s.AddVirtioNet(addr, mac); err != nil {
		t.Fatal(err)
	}
	write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "unbind"), addr)
	eventually(t, "unbind", func() bool { return s.Driver(addr) == "" })
	// Without an override or ID, uio_pci_generic's bind file does not match.
	write(t, s.sys("bus", "pci", "drivers", DriverUIO, "bind"), addr)
	// new_id makes it match and attaches at once.
	write(t, s.sys("bus", "pci", "drivers", DriverUIO, "new_id"), "1af4 1041")
	eventually(t, "new_id attach", func() bool { return s.Driver(addr) == DriverUIO })
	write(t, s.sys("bus", "pci", "drivers", DriverUIO, "unbind"), addr)
	eventually(t, "unbind from uio", func() bool { return s.Driver(addr) == "" })
	write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "bind"), addr)
	eventually(t, "bind file", func() bool { return s.Driver(addr) == DriverVirtioPCI })
	if s.Netdev(addr) == "" {
		t.Error("no netdev after bind to virtio-pci")
	}
	if errs := s.Errors(); len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
}

func TestGarbageWriteRecorded(t *testing.T) {
	t.Parallel()
	s := start(t)
	write(t, s.sys("bus", "pci", "drivers_probe"), "not-an-address")
	eventually(t, "error recorded", func() bool { return len(s.Errors()) == 1 })
	if !strings.Contains(s.Errors()[0].Error(), "not-an-address") {
		t.Errorf("error %v", s.Errors()[0])
	}
}

func TestRemoveUnloadAndLateAdd(t *testing.T) {
	t.Parallel()
	s := start(t, WithIOMMU())
	s.AddVirtioNetAfter(20*time.Millisecond, addr, mac)
	eventually(t, "late device", func() bool { return s.Netdev(addr) == "enp0s5" })
	if got := link(t, s.sys("bus", "pci", "devices", addr, "iommu_group")); got != "../../../kernel/iommu_groups/0" {
		t.Errorf("iommu_group -> %q", got)
	}
	if err := s.UnloadDriver(DriverVirtioPCI); err != nil {
		t.Fatal(err)
	}
	if s.Driver(addr) != "" || exists(s.sys("class", "net", "enp0s5")) || exists(s.sys("bus", "pci", "drivers", DriverVirtioPCI)) {
		t.Error("rmmod virtio-pci left the binding, netdev or driver dir")
	}
	if err := s.Remove(addr); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.sys("bus", "pci", "devices", addr), s.sys("devices", "pci0000:00", addr), s.sys("kernel", "iommu_groups", "0")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left after unplug", p)
		}
	}
	if err := s.Remove(addr); err == nil {
		t.Error("second Remove: no error")
	}
}

func TestCloseStopsLateAdd(t *testing.T) {
	t.Parallel()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.AddVirtioNetAfter(50*time.Millisecond, addr, mac)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if exists(s.sys("bus", "pci", "devices", addr)) {
		t.Error("device added after Close")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run after Close: no error")
	}
}

// TestUIODevNodes: with WithUIODevNodes a bind to uio_pci_generic makes
// root/dev/uioN, a character device of major UIODevMajor and minor N, and
// the unbind removes it; a second device gets the next N. Root (mknod).
func TestUIODevNodes(t *testing.T) {
	t.Parallel()
	netnstest.RequireRoot(t)
	s := start(t, WithUIODevNodes())
	addrs := []string{"0000:00:05.0", "0000:00:06.0"}
	for i, a := range addrs {
		if err := s.AddVirtioNet(a, fmt.Sprintf("fa:16:3e:00:00:0%d", i)); err != nil {
			t.Fatal(err)
		}
		write(t, s.sys("bus", "pci", "drivers", DriverVirtioPCI, "unbind"), a)
		eventually(t, "unbind "+a, func() bool { return s.Driver(a) == "" })
		write(t, s.sys("bus", "pci", "devices", a, "driver_override"), DriverUIO)
		write(t, s.sys("bus", "pci", "drivers_probe"), a)
		eventually(t, "bind "+a+" to uio", func() bool { return s.Driver(a) == DriverUIO })
		node := filepath.Join(s.root, "dev", fmt.Sprintf("uio%d", i))
		var st unix.Stat_t
		if err := unix.Stat(node, &st); err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != UIODevMajor || unix.Minor(st.Rdev) != uint32(i) {
			t.Errorf("%s: mode %o, device %d:%d; want a character device %d:%d", node, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), UIODevMajor, i)
		}
	}
	write(t, s.sys("bus", "pci", "drivers", DriverUIO, "unbind"), addrs[0])
	eventually(t, "unbind from uio", func() bool { return s.Driver(addrs[0]) == "" })
	if exists(filepath.Join(s.root, "dev", "uio0")) {
		t.Error("dev/uio0 still there after the unbind")
	}
	if !exists(filepath.Join(s.root, "dev", "uio1")) {
		t.Error("dev/uio1 gone with the other device's unbind")
	}
	if errs := s.Errors(); len(errs) > 0 {
		t.Errorf("simulator errors: %v", errs)
	}
}
