package binding

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-logr/logr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// ErrClaimNotPrepared means the device of a claimed interface has no
// checkpoint of the DRA driver for its claim: the claim was not prepared
// on this node (yet). The kubelet prepares a pod's claims before it makes
// its sandbox, so this is the DRA plugin not running, or a race: try
// again later.
var ErrClaimNotPrepared = errors.New("not prepared for the claim on this node")

// Claimed reports, as a pod's CNI interface, a device that a DRA claim's
// Prepare (internal/dra) bound: one pod, one device, two entry points. It
// binds nothing and gives nothing back: the claim's Unprepare owns the
// device. Its checkpoint (kind claimed, in the CNI path's directory) holds
// the interface's device-info file, which Detach removes with it.
type Claimed struct {
	dpdk *DPDK
	// claims are the DRA driver's checkpoints, only read; nil when the
	// daemon knows no DRA checkpoint directory.
	claims Checkpoints
}

var _ Driver = (*Claimed)(nil)

// NewClaimed returns the driver of claimed interfaces: dpdk is the CNI
// path's DPDK driver (its checkpoints, sysfs and device-info directory),
// claims the DRA driver's checkpoints.
func NewClaimed(dpdk *DPDK, claims Checkpoints) *Claimed {
	return &Claimed{dpdk: dpdk, claims: claims}
}

// Attach finds the device the DRA driver prepared for claim req.ClaimUID
// and port req.PortID, checks it is present, has req's MAC and is bound as
// the claim's checkpoint says, records the attachment and writes its
// device-info file.
func (c *Claimed) Attach(ctx context.Context, req Request) (Result, error) {
	key := checkpoint.Key{ContainerID: req.ContainerID, IfName: req.IfName}
	if err := checkpoint.ValidateKey(key); err != nil {
		return Result{}, err
	}
	if len(req.MAC) != 6 || req.ClaimUID == "" || req.PortID == "" {
		return Result{}, fmt.Errorf("claimed attach %s: needs a MAC, a claim and a port (got %q, %q, %q)", key, req.MAC, req.ClaimUID, req.PortID)
	}
	devInfo, err := c.dpdk.deviceInfoFile(req)
	if err != nil {
		return Result{}, fmt.Errorf("claimed attach %s: %w", key, err)
	}
	prepared, err := c.prepared(req.ClaimUID, req.PortID)
	if err != nil {
		return Result{}, fmt.Errorf("claimed attach %s: %w", key, err)
	}
	if !strings.EqualFold(prepared.MAC, req.MAC.String()) {
		return Result{}, fmt.Errorf("claimed attach %s: claim %s prepared port %s with MAC %s, the interface has MAC %s",
			key, req.ClaimUID, req.PortID, prepared.MAC, req.MAC)
	}
	sys := c.dpdk.sys
	if got, err := sys.Driver(prepared.PCIAddress); !sys.Exists(prepared.PCIAddress) || err != nil || got != prepared.TargetDriver {
		return Result{}, fmt.Errorf("claimed attach %s: PCI device %s of claim %s is not bound to %s as its Prepare left it (driver %q): %w",
			key, prepared.PCIAddress, req.ClaimUID, prepared.TargetDriver, got, errors.Join(err, ErrClaimNotPrepared))
	}
	defer c.dpdk.locks.lock(key)()
	rec := checkpoint.Record{
		ContainerID: key.ContainerID, IfName: key.IfName, Kind: checkpoint.KindClaimed, MAC: req.MAC.String(), PortID: req.PortID,
		PCIAddress: prepared.PCIAddress, TargetDriver: prepared.TargetDriver, DeviceInfoFile: devInfo,
		Network: req.CNINetwork, NetNS: req.Netns, PodUID: req.PodUID, Extra: map[string]string{extraClaimUID: req.ClaimUID},
	}
	if err := c.dpdk.store.Put(rec); err != nil {
		return Result{}, fmt.Errorf("claimed attach %s: %w", key, err)
	}
	if devInfo != "" {
		if err := WriteDeviceInfo(c.dpdk.devInfoDir, devInfo, prepared.PCIAddress); err != nil {
			// Nothing else was done: the record goes with the failure.
			return Result{}, errors.Join(fmt.Errorf("claimed attach %s: %w", key, err), c.dpdk.store.Delete(key.ContainerID, key.IfName))
		}
	}
	logr.FromContextOrDiscard(ctx).V(1).Info("reported a claim's DPDK device", "container", key.ContainerID, "ifname", key.IfName,
		"pci", prepared.PCIAddress, "claim", req.ClaimUID)
	return Result{PCIAddress: prepared.PCIAddress, OriginalDriver: prepared.OriginalDriver, BoundDriver: prepared.TargetDriver}, nil
}

// prepared returns the DRA driver's checkpoint of port portID for claim
// uid.
func (c *Claimed) prepared(uid, portID string) (checkpoint.Record, error) {
	if c.claims == nil {
		return checkpoint.Record{}, fmt.Errorf("port %s of claim %s: %w (the DRA kubelet plugin is off on this node: --dra)", portID, uid, ErrClaimNotPrepared)
	}
	recs, err := c.claims.List()
	for _, r := range recs {
		if r.ContainerID == uid && r.PortID == portID && r.Kind == checkpoint.KindDPDK {
			return r, nil
		}
	}
	return checkpoint.Record{}, fmt.Errorf("port %s of claim %s: %w (no checkpoint of the DRA driver names it; is its kubelet plugin running here?)%s",
		portID, uid, ErrClaimNotPrepared, errText(err))
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// Check verifies the device is still bound as the claim left it and its
// device-info file names it (as for a DPDK attachment: the record holds
// the device and its driver).
func (c *Claimed) Check(ctx context.Context, req Request) error { return c.dpdk.Check(ctx, req) }

// Detach removes the attachment's device-info file and checkpoint; the
// device stays as the claim's Prepare left it. Nothing to do is a success.
func (c *Claimed) Detach(ctx context.Context, containerID, ifName string) error {
	key := checkpoint.Key{ContainerID: containerID, IfName: ifName}
	if err := checkpoint.ValidateKey(key); err != nil {
		return err
	}
	defer c.dpdk.locks.lock(key)()
	rec, err := c.dpdk.store.Get(containerID, ifName)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claimed detach %s: %w", key, err)
	}
	if err := c.dpdk.removeDeviceInfo(ctx, rec); err != nil {
		return fmt.Errorf("claimed detach %s: %w", key, err)
	}
	if err := c.dpdk.store.Delete(containerID, ifName); err != nil {
		return fmt.Errorf("claimed detach %s: %w", key, err)
	}
	return nil
}
