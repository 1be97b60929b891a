package binding

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// DPDKSysfs is what the DPDK driver needs from the PCI sysfs.
type DPDKSysfs interface {
	// WaitForMAC waits until a PCI device has a netdev with the MAC.
	WaitForMAC(ctx context.Context, mac string) (string, error)
	// Exists reports whether the PCI device is present.
	Exists(addr string) bool
	// Driver is the device's current driver, "" when unbound.
	Driver(addr string) (string, error)
	// CheckDriver says, without changing anything, whether the device can
	// be bound to the driver.
	CheckDriver(addr, driver string) error
	// Bind binds the device to the driver and waits until it is bound.
	Bind(ctx context.Context, addr, driver string) error
	// Unbind leaves the device bound to no driver.
	Unbind(ctx context.Context, addr string) error
	// WaitForNetdev waits until the device has a netdev with the MAC.
	WaitForNetdev(ctx context.Context, addr, mac string) (string, error)
	// Netdevs lists the device's kernel netdevs (none once it is bound
	// to a DPDK driver).
	Netdevs(addr string) ([]pci.Netdev, error)
}

var _ DPDKSysfs = (*pci.SysFS)(nil)

// DPDKOptions tunes the DPDK driver; zero values take the defaults.
type DPDKOptions struct {
	// DefaultDriver is the driver used when a request names none
	// (uio_pci_generic).
	DefaultDriver string
	// DeviceTimeout bounds the wait for the hot-plugged device to appear
	// and, on Detach, for its netdev to come back (10 s).
	DeviceTimeout time.Duration
	// DevInfoRoot, when set, is the root under which the device-info file
	// of a request that names none goes (see DeviceInfoPath).
	DevInfoRoot string
	// DevInfoDir, when set, is the one directory device-info files are
	// written to and removed from instead of DevInfoRoot's CNI directory:
	// the DRA driver names its files itself, in the device-plugin
	// directory (DeviceInfoDPDir).
	DevInfoDir string
	// Node says where the node's own NIC is: a device the node uses is
	// never bound (see refuseNodeDevice). Zero: the caller's network
	// namespace, no uplink name.
	Node KernelOptions
}

// DPDK binds hot-plugged virtio-net devices to a DPDK driver for pods and
// gives them back to their kernel driver. Everything Detach needs is in the
// checkpoint, so a new DPDK value (after a daemon restart) can undo what an
// old one did.
type DPDK struct {
	sys   DPDKSysfs
	store Checkpoints
	opts  DPDKOptions
	// devInfoDir is the one directory device-info files are written to
	// and removed from ("" without a DevInfoRoot: none is).
	devInfoDir string
	locks      dpdkKeyLocks
}

// NewDPDK returns the DPDK driver.
func NewDPDK(sys DPDKSysfs, store Checkpoints, opts DPDKOptions) *DPDK {
	if opts.DefaultDriver == "" {
		opts.DefaultDriver = pci.DriverUIO
	}
	if opts.DeviceTimeout <= 0 {
		opts.DeviceTimeout = 10 * time.Second
	}
	d := &DPDK{sys: sys, store: store, opts: opts}
	if opts.DevInfoRoot != "" {
		d.devInfoDir = DeviceInfoDir(opts.DevInfoRoot)
	}
	if opts.DevInfoDir != "" {
		d.devInfoDir = opts.DevInfoDir
	}
	return d
}

// Attach finds the device by MAC (waiting up to the device timeout for it
// to appear), records the checkpoint, binds the device to the target driver,
// verifies it and writes the device-info file. A retried Attach for the same
// container and interface finds the device through its checkpoint (its
// netdev and MAC are gone once unbound) and succeeds when it is already
// bound. On failure it gives the device back to its original driver.
func (d *DPDK) Attach(ctx context.Context, req Request) (Result, error) {
	log := logr.FromContextOrDiscard(ctx).WithValues("container", req.ContainerID, "ifname", req.IfName)
	key := checkpoint.Key{ContainerID: req.ContainerID, IfName: req.IfName}
	if err := checkpoint.ValidateKey(key); err != nil {
		return Result{}, err
	}
	if len(req.MAC) != 6 {
		return Result{}, fmt.Errorf("dpdk attach %s: MAC %q is not an Ethernet address", key, req.MAC)
	}
	mac := req.MAC.String()
	target := req.DPDKDriver
	if target == "" {
		target = d.opts.DefaultDriver
	}
	devInfo, err := d.deviceInfoFile(req)
	if err != nil {
		return Result{}, fmt.Errorf("dpdk attach %s: %w", key, err)
	}
	defer d.locks.lock(key)()
	want := checkpoint.Record{
		ContainerID: key.ContainerID, IfName: key.IfName, Kind: checkpoint.KindDPDK, MAC: mac,
		TargetDriver: target, DeviceInfoFile: devInfo, PortID: req.PortID, Network: req.CNINetwork, NetNS: req.Netns,
		PodUID: req.PodUID,
	}

	var waited time.Duration
	rec, err := d.store.Get(req.ContainerID, req.IfName)
	switch {
	case err == nil:
		if !strings.EqualFold(rec.MAC, mac) {
			return Result{}, fmt.Errorf("dpdk attach %s with MAC %s: the checkpoint holds MAC %s (device %s); DEL it first",
				key, mac, rec.MAC, rec.PCIAddress)
		}
		if !d.sys.Exists(rec.PCIAddress) {
			return Result{}, fmt.Errorf("dpdk attach %s: PCI device %s of MAC %s is gone (detached from the VM?)",
				key, rec.PCIAddress, mac)
		}
		log.V(1).Info("retried attach, device from checkpoint", "pci", rec.PCIAddress)
		var changed bool
		if rec, changed = retriedRecord(rec, want); changed {
			if err := d.store.Put(rec); err != nil {
				return Result{}, fmt.Errorf("dpdk attach %s: %w", key, err)
			}
		}
	case errors.Is(err, checkpoint.ErrNotFound):
		if rec, waited, err = d.newRecord(ctx, want); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, fmt.Errorf("dpdk attach %s: %w", key, err)
	}

	start := time.Now()
	if err := d.sys.Bind(ctx, rec.PCIAddress, target); err != nil {
		return Result{}, d.rollback(ctx, rec, fmt.Errorf("dpdk attach %s: %w", key, err))
	}
	if got, err := d.sys.Driver(rec.PCIAddress); err != nil || got != target {
		err = errors.Join(err, fmt.Errorf("PCI device %s is bound to %q, not %s", rec.PCIAddress, got, target))
		return Result{}, d.rollback(ctx, rec, fmt.Errorf("dpdk attach %s: %w", key, err))
	}
	if devInfo != "" {
		if err := WriteDeviceInfo(d.devInfoDir, devInfo, rec.PCIAddress); err != nil {
			return Result{}, d.rollback(ctx, rec, fmt.Errorf("dpdk attach %s: %w", key, err))
		}
	}
	log.V(1).Info("bound DPDK device", "pci", rec.PCIAddress, "from", rec.OriginalDriver, "to", target,
		"bindTime", time.Since(start))
	return Result{PCIAddress: rec.PCIAddress, OriginalDriver: rec.OriginalDriver, BoundDriver: target, DeviceWait: waited}, nil
}

// deviceInfoFile is where the device-info file of req goes: the runtime's
// CNIDeviceInfoFile, checked to be in the device-info directory, else a
// name of the attachment's under DevInfoRoot ("" without one).
func (d *DPDK) deviceInfoFile(req Request) (string, error) {
	if req.DeviceInfoFile != "" {
		if _, err := deviceInfoName(d.devInfoDir, req.DeviceInfoFile); err != nil {
			return "", err
		}
		return req.DeviceInfoFile, nil
	}
	if d.opts.DevInfoRoot != "" {
		return DeviceInfoPath(d.opts.DevInfoRoot, req.Network, req.ContainerID, req.IfName), nil
	}
	return "", nil
}

// newRecord waits for the device, checks the target driver can take it and
// writes the checkpoint, before anything on the device changes.
func (d *DPDK) newRecord(ctx context.Context, rec checkpoint.Record) (_ checkpoint.Record, waited time.Duration, err error) {
	key, mac, target := rec.Key(), rec.MAC, rec.TargetDriver
	wctx, cancel := context.WithTimeout(ctx, d.opts.DeviceTimeout)
	defer cancel()
	start := time.Now()
	addr, err := d.sys.WaitForMAC(wctx, mac)
	waited = time.Since(start)
	if err != nil {
		if errors.Is(err, pci.ErrMACNotFound) {
			err = fmt.Errorf("%w: %w", ErrDeviceNotFound, err)
		}
		return checkpoint.Record{}, waited, fmt.Errorf("dpdk attach %s: %w%s", key, err, d.holder(mac))
	}
	if err := d.refuseNodeDevice(ctx, addr, mac); err != nil {
		return checkpoint.Record{}, waited, fmt.Errorf("dpdk attach %s: %w", key, err)
	}
	orig, err := d.sys.Driver(addr)
	if err != nil {
		return checkpoint.Record{}, waited, fmt.Errorf("dpdk attach %s: %w", key, err)
	}
	if err := d.sys.CheckDriver(addr, target); err != nil {
		return checkpoint.Record{}, waited, fmt.Errorf("dpdk attach %s: %w", key, err)
	}
	rec.PCIAddress, rec.OriginalDriver = addr, orig
	if err := d.store.Put(rec); err != nil {
		return checkpoint.Record{}, waited, fmt.Errorf("dpdk attach %s: %w", key, err)
	}
	return rec, waited, nil
}

// retriedRecord is the checkpoint of a retried Attach: the device and its
// original driver as recorded, what the request may change (target
// driver, device-info file, port, network, netns, pod) as asked; an empty field
// of the request keeps the recorded value. changed says whether it differs
// from rec.
func retriedRecord(rec, want checkpoint.Record) (_ checkpoint.Record, changed bool) {
	changed = rec.TargetDriver != want.TargetDriver
	rec.TargetDriver = want.TargetDriver
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&rec.DeviceInfoFile, want.DeviceInfoFile}, {&rec.PortID, want.PortID}, {&rec.Network, want.Network}, {&rec.NetNS, want.NetNS}, {&rec.PodUID, want.PodUID},
	} {
		if f.v != "" && *f.dst != f.v {
			*f.dst, changed = f.v, true
		}
	}
	return rec, changed
}

// holder names another attachment whose checkpoint holds the MAC on a
// device (see shared), which explains a device that cannot be found by it.
func (d *DPDK) holder(mac string) string {
	recs, _ := d.store.List()
	want := newHolding(checkpoint.KindDPDK, checkpoint.Key{}, "", "", "", mac, 0)
	for _, r := range recs {
		if r.PCIAddress != "" && shared(want, recordHolding(r)) != "" {
			return fmt.Sprintf(" (the checkpoint of %s holds this MAC on PCI device %s, bound to %s)",
				r.Key(), r.PCIAddress, r.TargetDriver)
		}
	}
	return ""
}

// rollback gives the device back after a failed Attach and drops the
// checkpoint when that worked; otherwise the checkpoint stays for DEL.
func (d *DPDK) rollback(ctx context.Context, rec checkpoint.Record, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.DeviceTimeout)
	defer cancel()
	if err := d.restore(ctx, rec); err != nil {
		return fmt.Errorf("%w (rollback failed, the checkpoint stays for DEL: %w)", cause, err)
	}
	if err := d.store.Delete(rec.ContainerID, rec.IfName); err != nil {
		return fmt.Errorf("%w (rollback: %w)", cause, err)
	}
	return cause
}

// Detach gives the device of the attachment back to its original driver,
// waits until its netdev with the MAC is back, removes the device-info file
// and the checkpoint. It uses only the checkpoint, and with none there is
// nothing to do.
func (d *DPDK) Detach(ctx context.Context, containerID, ifName string) error {
	key := checkpoint.Key{ContainerID: containerID, IfName: ifName}
	if err := checkpoint.ValidateKey(key); err != nil {
		return err
	}
	defer d.locks.lock(key)()
	rec, err := d.store.Get(containerID, ifName)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dpdk detach %s: %w", key, err)
	}
	restoreErr := d.restore(ctx, rec)
	mismatch := errors.Is(restoreErr, ErrDeviceMismatch)
	switch {
	case mismatch:
		// Not this attachment's device any more: left alone, the record
		// set aside (reported), and the DEL done.
		if err := d.store.SetAside(rec, restoreErr); err != nil {
			return fmt.Errorf("dpdk detach %s: %w (setting the checkpoint aside: %w)", key, restoreErr, err)
		}
		logr.FromContextOrDiscard(ctx).Info("Left a device that is not as its checkpoint says alone", "container", containerID,
			"ifname", ifName, "pci", rec.PCIAddress, "reason", restoreErr.Error())
	case restoreErr != nil:
		return fmt.Errorf("dpdk detach %s: %w", key, restoreErr)
	}
	if err := d.removeDeviceInfo(ctx, rec); err != nil {
		return fmt.Errorf("dpdk detach %s: %w", key, err)
	}
	if mismatch {
		return nil // the record is set aside already
	}
	if err := d.store.Delete(containerID, ifName); err != nil {
		return fmt.Errorf("dpdk detach %s: %w", key, err)
	}
	logr.FromContextOrDiscard(ctx).V(1).Info("gave DPDK device back", "container", containerID, "ifname", ifName,
		"pci", rec.PCIAddress, "driver", rec.OriginalDriver)
	return nil
}

// removeDeviceInfo removes the device-info file rec names, if any.
func (d *DPDK) removeDeviceInfo(ctx context.Context, rec checkpoint.Record) error {
	if rec.DeviceInfoFile == "" {
		return nil
	}
	err := RemoveDeviceInfo(d.devInfoDir, rec.DeviceInfoFile)
	if errors.Is(err, ErrDeviceInfoPath) {
		// A record from before paths were confined, or edited: the
		// file is not the daemon's to remove.
		logr.FromContextOrDiscard(ctx).Info("Left a device-info file outside the device-info directory alone",
			"container", rec.ContainerID, "ifname", rec.IfName, "file", rec.DeviceInfoFile, "dir", d.devInfoDir)
		return nil
	}
	return err
}

// Check verifies, for CNI CHECK, that the attachment is as ADD left it: a
// checkpoint, the device present and bound to the target driver, and its
// device-info file naming it. Of the request it reads the key only: the
// checkpoint says the rest.
func (d *DPDK) Check(ctx context.Context, req Request) error {
	containerID, ifName := req.ContainerID, req.IfName
	key := checkpoint.Key{ContainerID: containerID, IfName: ifName}
	if err := checkpoint.ValidateKey(key); err != nil {
		return err
	}
	defer d.locks.lock(key)()
	rec, err := d.store.Get(containerID, ifName)
	if err != nil {
		return fmt.Errorf("dpdk check %s: %w", key, err)
	}
	if !d.sys.Exists(rec.PCIAddress) {
		return fmt.Errorf("dpdk check %s: PCI device %s is gone", key, rec.PCIAddress)
	}
	got, err := d.sys.Driver(rec.PCIAddress)
	if err != nil {
		return fmt.Errorf("dpdk check %s: %w", key, err)
	}
	if got != rec.TargetDriver {
		return fmt.Errorf("dpdk check %s: PCI device %s is bound to %q, want %s", key, rec.PCIAddress, got, rec.TargetDriver)
	}
	if rec.DeviceInfoFile != "" {
		di, err := ReadDeviceInfo(d.devInfoDir, rec.DeviceInfoFile)
		if err != nil {
			return fmt.Errorf("dpdk check %s: %w", key, err)
		}
		if di.PCI == nil || di.PCI.PCIAddress != rec.PCIAddress {
			return fmt.Errorf("dpdk check %s: device-info %s does not name PCI device %s", key, rec.DeviceInfoFile, rec.PCIAddress)
		}
	}
	return nil
}

// restore rebinds the device to its original driver and waits for its
// netdev. A device that is gone (hot-unplugged) needs nothing; one that is
// not as the record says is not touched (ErrDeviceMismatch, see
// asRecorded).
func (d *DPDK) restore(ctx context.Context, rec checkpoint.Record) error {
	if !d.sys.Exists(rec.PCIAddress) {
		return nil
	}
	if err := d.asRecorded(rec); err != nil {
		return err
	}
	if rec.OriginalDriver == "" {
		return d.sys.Unbind(ctx, rec.PCIAddress)
	}
	if err := d.sys.Bind(ctx, rec.PCIAddress, rec.OriginalDriver); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, d.opts.DeviceTimeout)
	defer cancel()
	if _, err := d.sys.WaitForNetdev(wctx, rec.PCIAddress, rec.MAC); err != nil {
		return err
	}
	return nil
}

// GC detaches every DPDK attachment keep does not want (CNI GC's list of
// valid attachments, or the pods the node still runs) and says how many it
// released. Corrupt records are set aside by the listing; files that cannot
// be read at all are reported and left alone.
func (d *DPDK) GC(ctx context.Context, keep func(checkpoint.Key) bool) (int, error) {
	recs, listErr := d.store.List()
	n := 0
	var errs []error
	for _, r := range recs {
		if r.Kind != checkpoint.KindDPDK || keep(r.Key()) {
			continue
		}
		if err := d.Detach(ctx, r.ContainerID, r.IfName); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(append(errs, listErr)...)
}

// dpdkKeyLocks serialises Attach and Detach of one attachment.
type dpdkKeyLocks struct {
	mu    sync.Mutex
	locks map[checkpoint.Key]*dpdkKeyLock
}

type dpdkKeyLock struct {
	mu   sync.Mutex
	refs int
}

func (l *dpdkKeyLocks) lock(k checkpoint.Key) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[checkpoint.Key]*dpdkKeyLock{}
	}
	kl := l.locks[k]
	if kl == nil {
		kl = &dpdkKeyLock{}
		l.locks[k] = kl
	}
	kl.refs++
	l.mu.Unlock()
	kl.mu.Lock()
	return func() {
		kl.mu.Unlock()
		l.mu.Lock()
		if kl.refs--; kl.refs == 0 {
			delete(l.locks, k)
		}
		l.mu.Unlock()
	}
}
