package pci_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

const (
	addr1 = "0000:00:05.0"
	mac1  = "fa:16:3e:00:00:01"
)

// newSim starts a simulated PCI bus in a temporary root and returns it with
// a pci.SysFS on the same root.
func newSim(t *testing.T, opts ...pcisim.Option) (*pcisim.Sim, *pci.SysFS) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	root := t.TempDir()
	sim, err := pcisim.Start(ctx, root, opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := sim.Close(); err != nil {
			t.Errorf("close simulator: %v", err)
		}
		for _, err := range sim.Errors() {
			t.Errorf("simulator: %v", err)
		}
	})
	return sim, pci.New(root, pci.WithPollInterval(2*time.Millisecond), pci.WithBindTimeout(5*time.Second))
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestFindByMAC(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddVirtioNet("0000:00:06.0", "fa:16:3e:00:00:02"); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindByMAC("FA:16:3E:00:00:01") // any case
	if err != nil {
		t.Fatal(err)
	}
	if got != addr1 {
		t.Errorf("FindByMAC = %s, want %s", got, addr1)
	}
	_, err = s.FindByMAC("fa:16:3e:00:00:99")
	if !errors.Is(err, pci.ErrMACNotFound) {
		t.Errorf("unknown MAC: err = %v, want ErrMACNotFound", err)
	}
	if _, err := s.FindByMAC("not-a-mac"); err == nil {
		t.Error("invalid MAC: no error")
	}
}

func TestWaitForMACLateDevice(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	sim.AddVirtioNetAfter(150*time.Millisecond, addr1, mac1)
	if _, err := s.FindByMAC(mac1); !errors.Is(err, pci.ErrMACNotFound) {
		t.Fatalf("before the hot-plug: err = %v, want ErrMACNotFound", err)
	}
	got, err := s.WaitForMAC(ctxTimeout(t, 5*time.Second), mac1)
	if err != nil {
		t.Fatal(err)
	}
	if got != addr1 {
		t.Errorf("WaitForMAC = %s, want %s", got, addr1)
	}
}

func TestWaitForMACTimeout(t *testing.T) {
	t.Parallel()
	_, s := newSim(t)
	_, err := s.WaitForMAC(ctxTimeout(t, 100*time.Millisecond), mac1)
	if !errors.Is(err, pci.ErrMACNotFound) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrMACNotFound and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), mac1) {
		t.Errorf("error %q does not name the MAC %s", err, mac1)
	}
}

func TestBindToUIOAndBack(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if d, err := s.Driver(addr1); err != nil || d != pci.DriverVirtioPCI {
		t.Fatalf("Driver before = %q, %v; want virtio-pci", d, err)
	}
	if err := s.Bind(ctx, addr1, pci.DriverUIO); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Driver(addr1); d != pci.DriverUIO {
		t.Errorf("Driver = %q, want %s", d, pci.DriverUIO)
	}
	if o, _ := s.DriverOverride(addr1); o != "" {
		t.Errorf("driver_override left as %q", o)
	}
	if nds, _ := s.Netdevs(addr1); len(nds) != 0 {
		t.Errorf("netdevs while bound to uio: %v", nds)
	}
	if _, err := s.FindByMAC(mac1); !errors.Is(err, pci.ErrMACNotFound) {
		t.Errorf("MAC still visible after unbind: %v", err)
	}

	if err := s.Bind(ctx, addr1, pci.DriverVirtioPCI); err != nil {
		t.Fatal(err)
	}
	name, err := s.WaitForNetdev(ctx, addr1, mac1)
	if err != nil {
		t.Fatal(err)
	}
	if name != "enp0s5" {
		t.Errorf("netdev = %q, want enp0s5", name)
	}
}

func TestBindAlreadyBound(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	for i := range 2 {
		if err := s.Bind(ctx, addr1, pci.DriverUIO); err != nil {
			t.Fatalf("bind #%d: %v", i+1, err)
		}
	}
	if d := sim.Driver(addr1); d != pci.DriverUIO {
		t.Errorf("simulator says driver %q, want %s", d, pci.DriverUIO)
	}
}

func TestBindDriverNotLoaded(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t, pcisim.WithDrivers(pcisim.DriverVirtioPCI))
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	err := s.Bind(ctxTimeout(t, 5*time.Second), addr1, pci.DriverUIO)
	if !errors.Is(err, pci.ErrDriverNotLoaded) {
		t.Fatalf("err = %v, want ErrDriverNotLoaded", err)
	}
	if !strings.Contains(err.Error(), "modprobe uio_pci_generic") {
		t.Errorf("error %q does not say to modprobe", err)
	}
	if d, _ := s.Driver(addr1); d != pci.DriverVirtioPCI {
		t.Errorf("device was touched: driver %q", d)
	}
	// Loading the module makes the same call work.
	if err := sim.LoadDriver(pcisim.DriverUIO); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(ctxTimeout(t, 5*time.Second), addr1, pci.DriverUIO); err != nil {
		t.Fatalf("after modprobe: %v", err)
	}
}

func TestBindVFIOWithoutIOMMU(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	err := s.Bind(ctxTimeout(t, 5*time.Second), addr1, pci.DriverVFIO)
	if !errors.Is(err, pci.ErrNoIOMMU) {
		t.Fatalf("err = %v, want ErrNoIOMMU", err)
	}
	for _, want := range []string{"iommu_groups", "intel-iommu", "uio_pci_generic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if d, _ := s.Driver(addr1); d != pci.DriverVirtioPCI {
		t.Errorf("device was touched: driver %q", d)
	}
}

func TestBindVFIONoIOMMUMode(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t, pcisim.WithNoIOMMUMode())
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	if !s.NoIOMMUMode() {
		t.Fatal("NoIOMMUMode = false")
	}
	if err := s.Bind(ctxTimeout(t, 5*time.Second), addr1, pci.DriverVFIO); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Driver(addr1); d != pci.DriverVFIO {
		t.Errorf("Driver = %q, want vfio-pci", d)
	}
}

func TestBindVFIOWithIOMMU(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t, pcisim.WithIOMMU())
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	info, err := s.IOMMU(addr1)
	if err != nil {
		t.Fatal(err)
	}
	if info.Groups != 1 || info.Group != "0" || !info.AccessPlatformKnown || !info.AccessPlatform || info.NoIOMMUMode {
		t.Errorf("IOMMU info = %+v", info)
	}
	drivers, err := s.Drivers()
	if err != nil || strings.Join(drivers, ",") != "uio_pci_generic,vfio-pci,virtio-pci" {
		t.Errorf("Drivers = %v, %v", drivers, err)
	}
	if err := s.Bind(ctxTimeout(t, 5*time.Second), addr1, pci.DriverVFIO); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Driver(addr1); d != pci.DriverVFIO {
		t.Errorf("Driver = %q, want vfio-pci", d)
	}
}

// TestBindProbeFails: the driver is loaded but its probe refuses the device,
// so the device never binds: Bind must give up in time and say which driver
// the device has now.
func TestBindProbeFails(t *testing.T) {
	t.Parallel()
	sim, _ := newSim(t, pcisim.WithProbeFailure(pcisim.DriverUIO))
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	s := pci.New(sim.Root(), pci.WithPollInterval(2*time.Millisecond), pci.WithBindTimeout(200*time.Millisecond))
	err := s.Bind(ctxTimeout(t, 5*time.Second), addr1, pci.DriverUIO)
	if err == nil {
		t.Fatal("bind succeeded although the driver's probe fails")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "driver now: none") ||
		!strings.Contains(err.Error(), addr1) {
		t.Errorf("err = %v, want a timeout naming the device and its current driver", err)
	}
}

func TestConcurrentBinds(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	const n = 8
	for i := range n {
		if err := sim.AddVirtioNet(fmt.Sprintf("0000:00:%02x.0", i+4), fmt.Sprintf("fa:16:3e:00:01:%02x", i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxTimeout(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			addr, err := s.FindByMAC(fmt.Sprintf("fa:16:3e:00:01:%02x", i))
			if err == nil {
				err = s.Bind(ctx, addr, pci.DriverUIO)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("device %d: %v", i, err)
		}
	}
	devs, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Driver != pci.DriverUIO {
			t.Errorf("%s: driver %q, want uio_pci_generic", d.Address, d.Driver)
		}
	}
}

func TestDevices(t *testing.T) {
	t.Parallel()
	sim, s := newSim(t)
	if err := sim.AddVirtioNet(addr1, mac1); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddDevice("0000:00:04.0", "fa:16:3e:00:00:04", pcisim.DeviceVirtioNetLegacy); err != nil {
		t.Fatal(err)
	}
	devs, err := s.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 {
		t.Fatalf("got %d devices, want 2: %+v", len(devs), devs)
	}
	d := devs[1]
	if d.Address != addr1 || d.Vendor != pci.VendorVirtio || d.Device != pci.DeviceVirtioNetModern ||
		d.Class != 0x020000 || d.Driver != pci.DriverVirtioPCI || !d.VirtioNet() ||
		len(d.Netdevs) != 1 || d.Netdevs[0] != (pci.Netdev{Name: "enp0s5", MAC: mac1}) {
		t.Errorf("device = %+v", d)
	}
	if devs[0].Device != pci.DeviceVirtioNetLegacy || !devs[0].VirtioNet() {
		t.Errorf("legacy device = %+v", devs[0])
	}
	if err := sim.Remove("0000:00:04.0"); err != nil {
		t.Fatal(err)
	}
	if devs, _ := s.Devices(); len(devs) != 1 {
		t.Errorf("after unplug: %d devices, want 1", len(devs))
	}
}
