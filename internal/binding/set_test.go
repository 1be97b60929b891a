package binding

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// set builds the node's drivers as the daemon does, over the simulated bus.
func (e *dpdkEnv) set(deviceTimeout time.Duration) *Set {
	e.t.Helper()
	s, err := New(Options{SysfsRoot: e.root, CheckpointDir: e.ckDir, DevInfoRoot: e.root, DeviceTimeout: deviceTimeout})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *dpdkEnv) dpdkDriver(s *Set) Driver {
	e.t.Helper()
	d, err := s.ForDriver(netconf.DriverNestedDPDK)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestDeviceTimeoutReachesAttach: a device that appears 12 s after the
// call, later than the fixed 10 s the drivers once used, is found with a
// device timeout of 20 s, and waited for once.
func TestDeviceTimeoutReachesAttach(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.sim.AddVirtioNetAfter(12*time.Second, dpdkAddr, dpdkMAC)
	d := e.dpdkDriver(e.set(20 * time.Second))
	start := time.Now()
	res, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", Network: "ns1/dp", MAC: hw(t, dpdkMAC), PortID: "port-1"})
	if err != nil {
		t.Fatalf("Attach of a device that appears after 12 s, with a 20 s device timeout: %v", err)
	}
	if res.PCIAddress != dpdkAddr || res.BoundDriver != pci.DriverUIO || res.DeviceWait < 12*time.Second || res.DeviceWait > time.Since(start) {
		t.Fatalf("Attach = %+v", res)
	}
	rec, err := e.store().Get(dpdkCID, "net1")
	if err != nil || rec.PortID != "port-1" || rec.DeviceInfoFile != DeviceInfoPath(e.root, "ns1/dp", dpdkCID, "net1") {
		t.Fatalf("checkpoint %+v, %v", rec, err)
	}
	if _, err := ReadDeviceInfo(DeviceInfoDir(e.root), rec.DeviceInfoFile); err != nil {
		t.Fatalf("device-info under the root: %v", err)
	}
}

// TestDeviceTimeoutBoundsAttach: with a short device timeout, a device that
// never appears is given up on after that timeout, as ErrDeviceNotFound.
func TestDeviceTimeoutBoundsAttach(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	start := time.Now()
	_, err := e.dpdkDriver(e.set(700*time.Millisecond)).Attach(testCtx(t), Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)})
	took := time.Since(start)
	if !errors.Is(err, ErrDeviceNotFound) || !errors.Is(err, pci.ErrMACNotFound) {
		t.Fatalf("err = %v, want ErrDeviceNotFound", err)
	}
	if took < 700*time.Millisecond || took > 5*time.Second {
		t.Fatalf("gave up after %s, want about the 700ms device timeout", took)
	}
	e.requireNoCheckpoint()
}

// TestDeviceTimeoutReachesDetach: a rebind that never completes (nothing
// answers the sysfs writes any more) fails after the configured device
// timeout, not after a fixed 10 s, and the checkpoint stays for a retry.
func TestDeviceTimeoutReachesDetach(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	d := e.dpdkDriver(e.set(1500 * time.Millisecond))
	if _, err := d.Attach(ctx, Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC)}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Close(); err != nil { // the kernel stops acting on writes
		t.Fatal(err)
	}
	start := time.Now()
	err := d.Detach(ctx, dpdkCID, "net1")
	took := time.Since(start)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), dpdkAddr) {
		t.Fatalf("Detach = %v, want a timeout naming %s", err, dpdkAddr)
	}
	if took < 1500*time.Millisecond || took > 8*time.Second {
		t.Fatalf("Detach gave up after %s, want about the 1.5s device timeout", took)
	}
	if _, err := e.store().Get(dpdkCID, "net1"); err != nil {
		t.Fatalf("checkpoint gone after a failed Detach: %v", err)
	}
}

// TestSetMapsDriversAndKinds: every driver name of netconf has a driver,
// and each checkpoint kind leads back to the driver that wrote it.
func TestSetMapsDriversAndKinds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New(Options{SysfsRoot: dir, CheckpointDir: filepath.Join(dir, "ck"), DeviceTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for name, kind := range map[string]string{
		netconf.DriverNestedVLAN: checkpoint.KindVLAN, netconf.DriverNestedMACVLAN: checkpoint.KindMACVLAN, netconf.DriverNestedDPDK: checkpoint.KindDPDK,
	} {
		byName, err := s.ForDriver(name)
		if err != nil {
			t.Fatalf("ForDriver(%s): %v", name, err)
		}
		byKind, err := s.ForRecord(checkpoint.Record{Kind: kind})
		if err != nil || byKind != byName {
			t.Errorf("ForRecord(kind %s) = %T, %v; want the %s driver", kind, byKind, err, name)
		}
	}
	if len(netconf.Drivers()) != 3 {
		t.Errorf("netconf has %d drivers, this test knows 3", len(netconf.Drivers()))
	}
	if _, err := s.ForDriver("nested-sriov"); err == nil {
		t.Error("ForDriver accepted an unknown driver")
	}
	if _, err := s.ForRecord(checkpoint.Record{ContainerID: "c", IfName: "x", Kind: "sriov"}); err == nil {
		t.Error("ForRecord accepted an unknown kind")
	}
	if _, err := os.Stat(filepath.Join(dir, "ck")); err != nil {
		t.Errorf("New did not create the checkpoint directory: %v", err)
	}
}
