package binding

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

const (
	dpdkAddr = "0000:01:00.0"
	dpdkMAC  = "fa:16:3e:5d:00:01"
	dpdkCID  = "9a4c1f0e77b2"
)

// dpdkEnv is one simulated node: a PCI bus and a checkpoint directory.
type dpdkEnv struct {
	t     *testing.T
	sim   *pcisim.Sim
	root  string
	ckDir string
}

func newDPDKEnv(t *testing.T, opts ...pcisim.Option) *dpdkEnv {
	t.Helper()
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
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
	return &dpdkEnv{t: t, sim: sim, root: root, ckDir: filepath.Join(root, "var/lib/kuryr/checkpoints")}
}

// daemon is what a (re)started daemon builds: fresh sysfs and checkpoint
// objects over the same directories.
func (e *dpdkEnv) daemon(deviceTimeout time.Duration) *DPDK {
	e.t.Helper()
	store, err := checkpoint.New(e.ckDir)
	if err != nil {
		e.t.Fatal(err)
	}
	sys := pci.New(e.root, pci.WithPollInterval(2*time.Millisecond), pci.WithBindTimeout(2*time.Second))
	return NewDPDK(sys, store, DPDKOptions{DeviceTimeout: deviceTimeout, DevInfoRoot: e.root})
}

func (e *dpdkEnv) store() *checkpoint.Store {
	s, err := checkpoint.New(e.ckDir)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *dpdkEnv) requireNoCheckpoint() {
	e.t.Helper()
	recs, err := e.store().List()
	if err != nil || len(recs) != 0 {
		e.t.Errorf("checkpoints left: %+v, %v", recs, err)
	}
}

// requireKernelOwned asserts the device is back on virtio-pci with its netdev.
func (e *dpdkEnv) requireKernelOwned() {
	e.t.Helper()
	if d := e.sim.Driver(dpdkAddr); d != pci.DriverVirtioPCI {
		e.t.Errorf("device driver %q, want virtio-pci", d)
	}
	if n := e.sim.Netdev(dpdkAddr); n == "" {
		e.t.Error("device has no netdev")
	}
}

func hw(t *testing.T, mac string) net.HardwareAddr {
	t.Helper()
	a, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDPDKAttachLateDeviceAndDetach(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	e.sim.AddVirtioNetAfter(300*time.Millisecond, dpdkAddr, dpdkMAC)
	devInfo := DeviceInfoPath(e.root, "ns1/dpdk-net", dpdkCID, "net1")
	d := e.daemon(5 * time.Second)
	res, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, "FA:16:3E:5D:00:01"), DeviceInfoFile: devInfo,
		CNINetwork: "dpdk-net", PodUID: "5bae17b3-0000-4000-8000-000000000001", Netns: "/var/run/netns/cni-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := Result{PCIAddress: dpdkAddr, OriginalDriver: pci.DriverVirtioPCI, BoundDriver: pci.DriverUIO}
	if res.DeviceWait < 200*time.Millisecond {
		t.Errorf("Attach says it waited %s for a device that appeared after 300ms", res.DeviceWait)
	}
	if res.DeviceWait = 0; res != want {
		t.Errorf("Attach = %+v, want %+v", res, want)
	}
	if drv := e.sim.Driver(dpdkAddr); drv != pci.DriverUIO || e.sim.Netdev(dpdkAddr) != "" {
		t.Errorf("after attach: driver %q netdev %q", drv, e.sim.Netdev(dpdkAddr))
	}
	rec, err := e.store().Get(dpdkCID, "net1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.PCIAddress != dpdkAddr || rec.MAC != dpdkMAC || rec.OriginalDriver != pci.DriverVirtioPCI ||
		rec.TargetDriver != pci.DriverUIO || rec.Kind != checkpoint.KindDPDK || rec.DeviceInfoFile != devInfo ||
		rec.Network != "dpdk-net" || rec.PodUID != "5bae17b3-0000-4000-8000-000000000001" || rec.NetNS != "/var/run/netns/cni-1" {
		t.Errorf("checkpoint = %+v", rec)
	}
	b, err := os.ReadFile(devInfo)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:00.0"}}` {
		t.Errorf("device-info = %s", b)
	}

	if err := d.Check(ctx, Request{ContainerID: dpdkCID, IfName: "net1"}); err != nil {
		t.Errorf("CHECK after ADD: %v", err)
	}

	if err := d.Detach(ctx, dpdkCID, "net1"); err != nil {
		t.Fatal(err)
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
	if _, err := os.Stat(devInfo); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("device-info file left: %v", err)
	}
	if err := d.Check(ctx, Request{ContainerID: dpdkCID, IfName: "net1"}); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("CHECK after DEL = %v, want ErrNotFound", err)
	}
}

func TestDPDKCheckSeesDriftedDevice(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.daemon(time.Second)
	if _, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)}); err != nil {
		t.Fatal(err)
	}
	// Someone gives the device back to the kernel behind our back.
	if err := pci.New(e.root, pci.WithPollInterval(2*time.Millisecond)).Bind(ctx, dpdkAddr, pci.DriverVirtioPCI); err != nil {
		t.Fatal(err)
	}
	err := d.Check(ctx, Request{ContainerID: dpdkCID, IfName: "net1"})
	if err == nil || !strings.Contains(err.Error(), `bound to "virtio-pci", want uio_pci_generic`) {
		t.Errorf("CHECK = %v, want a driver mismatch", err)
	}
}

func TestDPDKAttachRetriedWhenAlreadyBound(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.daemon(time.Second)
	req := Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)}
	first, err := d.Attach(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The netdev and its MAC are gone now; the retry must still succeed,
	// from the checkpoint, and report the same device and drivers.
	second, err := e.daemon(100*time.Millisecond).Attach(ctx, req)
	if err != nil {
		t.Fatalf("retried attach: %v", err)
	}
	if second.DeviceWait != 0 {
		t.Errorf("retried attach waited %s for a device it knew", second.DeviceWait)
	}
	if first.DeviceWait = 0; first != second {
		t.Errorf("retried attach = %+v, first = %+v", second, first)
	}
	if rec, _ := e.store().Get(dpdkCID, "net1"); rec.OriginalDriver != pci.DriverVirtioPCI {
		t.Errorf("retry overwrote the original driver: %+v", rec)
	}
}

func TestDPDKTargetDriverNotLoaded(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t, pcisim.WithDrivers(pcisim.DriverVirtioPCI))
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	_, err := e.daemon(time.Second).Attach(testCtx(t), Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)})
	if !errors.Is(err, pci.ErrDriverNotLoaded) || !strings.Contains(err.Error(), "modprobe uio_pci_generic") {
		t.Fatalf("err = %v, want ErrDriverNotLoaded saying modprobe uio_pci_generic", err)
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
}

func TestDPDKVFIOWithoutIOMMU(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	_, err := e.daemon(time.Second).Attach(testCtx(t),
		Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC), DPDKDriver: pci.DriverVFIO})
	if !errors.Is(err, pci.ErrNoIOMMU) || !strings.Contains(err.Error(), "IOMMU") || !strings.Contains(err.Error(), dpdkAddr) {
		t.Fatalf("err = %v, want ErrNoIOMMU naming the device", err)
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
}

func TestDPDKVFIOWithIOMMU(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t, pcisim.WithIOMMU())
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.daemon(time.Second)
	res, err := d.Attach(testCtx(t), Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC), DPDKDriver: pci.DriverVFIO})
	if err != nil {
		t.Fatal(err)
	}
	if res.BoundDriver != pci.DriverVFIO || e.sim.Driver(dpdkAddr) != pci.DriverVFIO {
		t.Errorf("result %+v, simulator driver %q", res, e.sim.Driver(dpdkAddr))
	}
	if err := d.Detach(testCtx(t), dpdkCID, "net1"); err != nil {
		t.Fatal(err)
	}
	e.requireKernelOwned()
}

func TestDPDKDaemonRestartBetweenAddAndDel(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	devInfo := filepath.Join(DeviceInfoDir(e.root), "devinfo.json")
	if _, err := e.daemon(time.Second).Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC), DeviceInfoFile: devInfo}); err != nil {
		t.Fatal(err)
	}
	// A new daemon knows nothing but the checkpoint directory.
	if err := e.daemon(time.Second).Detach(ctx, dpdkCID, "net1"); err != nil {
		t.Fatal(err)
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
	if _, err := os.Stat(devInfo); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("device-info file left: %v", err)
	}
}

func TestDPDKCrashMidBindThenDel(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	// The daemon wrote its checkpoint, unbound the device and died before
	// the probe: the device has no driver and no netdev.
	if err := e.store().Put(checkpoint.Record{ContainerID: dpdkCID, IfName: "net1", Kind: checkpoint.KindDPDK,
		MAC: dpdkMAC, PCIAddress: dpdkAddr, OriginalDriver: pci.DriverVirtioPCI, TargetDriver: pci.DriverUIO}); err != nil {
		t.Fatal(err)
	}
	sys := pci.New(e.root, pci.WithPollInterval(2*time.Millisecond))
	if err := sys.Unbind(ctx, dpdkAddr); err != nil {
		t.Fatal(err)
	}
	if err := e.daemon(time.Second).Detach(ctx, dpdkCID, "net1"); err != nil {
		t.Fatal(err)
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
}

func TestDPDKDetachTwiceAndNothingToDo(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.daemon(time.Second)
	if err := d.Detach(ctx, "never-added", "net1"); err != nil {
		t.Errorf("DEL with nothing to do: %v", err)
	}
	if _, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := d.Detach(ctx, dpdkCID, "net1"); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
}

func TestDPDKMACNotFound(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	start := time.Now()
	_, err := e.daemon(150*time.Millisecond).Attach(testCtx(t), Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)})
	if !errors.Is(err, pci.ErrMACNotFound) || !strings.Contains(err.Error(), dpdkMAC) {
		t.Fatalf("err = %v, want ErrMACNotFound naming %s", err, dpdkMAC)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Errorf("gave up after %s, before the device timeout", time.Since(start))
	}
	e.requireNoCheckpoint()
}

func TestDPDKMACHeldByAnotherAttachment(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.daemon(100 * time.Millisecond)
	if _, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)}); err != nil {
		t.Fatal(err)
	}
	_, err := d.Attach(ctx, Request{ContainerID: "other", IfName: "net1", MAC: hw(t, dpdkMAC)})
	if !errors.Is(err, pci.ErrMACNotFound) || !strings.Contains(err.Error(), dpdkCID+"/net1") {
		t.Fatalf("err = %v, want ErrMACNotFound naming the holder %s/net1", err, dpdkCID)
	}
	// Same key, different MAC: refused, the recorded device untouched.
	_, err = d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, "fa:16:3e:5d:00:99")})
	if err == nil || !strings.Contains(err.Error(), "DEL it first") {
		t.Errorf("err = %v, want a refusal", err)
	}
	if e.sim.Driver(dpdkAddr) != pci.DriverUIO {
		t.Error("device changed by a refused attach")
	}
}

func TestDPDKBindFailureRollsBack(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t, pcisim.WithProbeFailure(pcisim.DriverUIO))
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	store, _ := checkpoint.New(e.ckDir)
	sys := pci.New(e.root, pci.WithPollInterval(2*time.Millisecond), pci.WithBindTimeout(200*time.Millisecond))
	_, err := NewDPDK(sys, store, DPDKOptions{DeviceTimeout: time.Second}).
		Attach(testCtx(t), Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)})
	if err == nil || !strings.Contains(err.Error(), "bind PCI device "+dpdkAddr) {
		t.Fatalf("err = %v, want a bind failure", err)
	}
	e.requireKernelOwned()
	e.requireNoCheckpoint()
}

func TestDPDKDeviceUnpluggedBeforeDel(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.daemon(time.Second)
	if _, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Remove(dpdkAddr); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(ctx, dpdkCID, "net1"); err != nil {
		t.Fatalf("DEL after hot-unplug: %v", err)
	}
	e.requireNoCheckpoint()
}

func TestDPDKGC(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	macs := map[string]string{"0000:01:00.0": "fa:16:3e:5d:00:01", "0000:02:00.0": "fa:16:3e:5d:00:02"}
	for addr, mac := range macs {
		if err := e.sim.AddVirtioNet(addr, mac); err != nil {
			t.Fatal(err)
		}
	}
	d := e.daemon(time.Second)
	for _, id := range []string{"live", "gone"} {
		mac := macs["0000:01:00.0"]
		if id == "gone" {
			mac = macs["0000:02:00.0"]
		}
		if _, err := d.Attach(ctx, Request{ContainerID: id, IfName: "net1", MAC: hw(t, mac)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.daemon(time.Second).GC(ctx, func(k checkpoint.Key) bool { return k.ContainerID == "live" })
	if err != nil || n != 1 {
		t.Fatalf("GC = %d, %v; want 1", n, err)
	}
	if e.sim.Driver("0000:02:00.0") != pci.DriverVirtioPCI || e.sim.Driver("0000:01:00.0") != pci.DriverUIO {
		t.Errorf("GC released the wrong device: %q %q", e.sim.Driver("0000:01:00.0"), e.sim.Driver("0000:02:00.0"))
	}
	recs, _ := e.store().List()
	if len(recs) != 1 || recs[0].ContainerID != "live" {
		t.Errorf("checkpoints after GC: %+v", recs)
	}
}

func TestDeviceInfoFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	p := DeviceInfoPath(root, "ns1/dpdk-net", "abc123", "net1")
	if want := filepath.Join(root, "var/run/k8s.cni.cncf.io/devinfo/cni/ns1-dpdk-net-abc123_net1"); p != want {
		t.Errorf("DeviceInfoPath = %s, want %s", p, want)
	}
	dir := DeviceInfoDir(root)
	for range 2 { // a retried ADD rewrites it
		if err := WriteDeviceInfo(dir, p, "0000:00:05.0"); err != nil {
			t.Fatal(err)
		}
	}
	di, err := ReadDeviceInfo(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	if di.Type != "pci" || di.Version != "1.1.0" || di.PCI == nil || di.PCI.PCIAddress != "0000:00:05.0" {
		t.Errorf("device-info = %+v", di)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
	for range 2 {
		if err := RemoveDeviceInfo(dir, p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeviceInfoPathsConfined: a device-info file named by the runtime's
// configuration (under Multus: the NetworkAttachmentDefinition's author)
// is written only directly in the device-info directory. A path elsewhere,
// in a subdirectory, through a symlinked directory or onto a symlink is
// refused before anything happens: no file written, none deleted, the
// device not bound and no checkpoint. A symlink at a removed name is
// removed itself, never its target.
func TestDeviceInfoPathsConfined(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	dir := DeviceInfoDir(e.root)
	outside := filepath.Join(e.root, "etc")
	victim := filepath.Join(outside, "victim")
	for _, p := range []string{dir, outside} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(dir, "linkdir")))
	must(os.Symlink(victim, filepath.Join(dir, "linkfile")))
	d := e.daemon(time.Second)
	for _, p := range []string{
		victim,                                  // elsewhere
		"/etc/kuryr-dpdk-test-never-written",    // elsewhere, on the host
		filepath.Join(dir, "linkdir", "victim"), // through a symlinked directory
		filepath.Join(dir, "linkfile"),          // onto a symlink
		filepath.Join(dir, "sub", "x"),          // a subdirectory
		dir,                                     // the directory itself
	} {
		_, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC), DeviceInfoFile: p})
		if !errors.Is(err, ErrDeviceInfoPath) {
			t.Errorf("Attach with device-info file %s: %v, want ErrDeviceInfoPath", p, err)
		}
		if drv := e.sim.Driver(dpdkAddr); drv != pci.DriverVirtioPCI {
			t.Fatalf("after the refused Attach (%s) the device is bound to %q", p, drv)
		}
		e.requireNoCheckpoint()
		if p == filepath.Join(dir, "linkfile") {
			continue // a name in the directory: removable (below)
		}
		if err := RemoveDeviceInfo(dir, p); !errors.Is(err, ErrDeviceInfoPath) {
			t.Errorf("RemoveDeviceInfo(%s): %v, want ErrDeviceInfoPath", p, err)
		}
	}
	if _, err := ReadDeviceInfo(dir, filepath.Join(dir, "linkfile")); !errors.Is(err, unix.ELOOP) {
		t.Errorf("ReadDeviceInfo of a symlink: %v, want ELOOP (not followed)", err)
	}
	// Removing the symlink's name removes the symlink only.
	must(RemoveDeviceInfo(dir, filepath.Join(dir, "linkfile")))
	if _, err := os.Lstat(filepath.Join(dir, "linkfile")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symlink still there: %v", err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
		t.Fatalf("the symlink's target is now %q, %v", b, err)
	}
	if _, err := os.Stat("/etc/kuryr-dpdk-test-never-written"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written in /etc: %v", err)
	}
}

// TestDetachLeavesADeviceOnAnotherDriver: a device someone rebound to
// another driver after Attach (here vfio-pci instead of the recorded
// uio_pci_generic) is not "given back" by Detach: it stays on that
// driver, the checkpoint is set aside into the quarantine directory (and
// reported) and Detach succeeds, so the DEL is not retried forever.
func TestDetachLeavesADeviceOnAnotherDriver(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t, pcisim.WithIOMMU())
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	var reports []checkpoint.SetAsideReport
	store, err := checkpoint.New(e.ckDir, checkpoint.WithReport(func(r checkpoint.SetAsideReport) { reports = append(reports, r) }))
	if err != nil {
		t.Fatal(err)
	}
	sys := pci.New(e.root, pci.WithPollInterval(2*time.Millisecond), pci.WithBindTimeout(2*time.Second))
	d := NewDPDK(sys, store, DPDKOptions{DeviceTimeout: time.Second, DevInfoRoot: e.root})
	if _, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC), DPDKDriver: pci.DriverUIO}); err != nil {
		t.Fatal(err)
	}
	if err := sys.Bind(ctx, dpdkAddr, pci.DriverVFIO); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(ctx, dpdkCID, "net1"); err != nil {
		t.Fatalf("Detach of a device on another driver: %v", err)
	}
	if drv := e.sim.Driver(dpdkAddr); drv != pci.DriverVFIO {
		t.Fatalf("device moved to %q, want it left on vfio-pci", drv)
	}
	if len(reports) != 1 || !errors.Is(reports[0].Reason, ErrDeviceMismatch) ||
		filepath.Dir(reports[0].To) != filepath.Join(e.ckDir, checkpoint.QuarantineDir) {
		t.Fatalf("set-aside reports %+v, want the checkpoint moved to the quarantine directory", reports)
	}
	e.requireNoCheckpoint()
	if _, err := os.Stat(DeviceInfoPath(e.root, "", dpdkCID, "net1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("device-info left: %v", err)
	}
}
