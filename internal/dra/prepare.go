package dra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	metav1apply "k8s.io/client-go/applyconfigurations/meta/v1"
	resourceapply "k8s.io/client-go/applyconfigurations/resource/v1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/kuryrnode"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// Config is the opaque configuration of a claim's or a class's device
// (config[].opaque with driver dpdk.kuryr-dpdk.io).
type Config struct {
	// Driver is the DPDK driver to bind the device to: vfio-pci or
	// uio_pci_generic. Empty: vfio-pci where the node has a vIOMMU,
	// uio_pci_generic otherwise.
	Driver string `json:"driver,omitempty"`
}

// ErrOtherClaim means the checkpoint shows the device prepared for
// another claim: it is never handed to two.
var ErrOtherClaim = errors.New("device is prepared for another claim")

// PrepareResourceClaims prepares each claim on its own: one claim's
// failure is its own result, and the kubelet retries it. The claims of one
// call share one owner timeout, so a call never waits longer than that for
// the controller, however many claims it holds.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	deadline := time.Now().Add(d.opts.OwnerTimeout)
	for _, c := range claims {
		d.log.V(1).Info("Preparing claim", "claim", c.Namespace+"/"+c.Name, "uid", c.UID)
		start := time.Now()
		devs, err := d.prepareClaim(ctx, c, deadline)
		d.metrics.prepare.Observe(time.Since(start).Seconds())
		d.metrics.claims.WithLabelValues("prepare", result(err)).Inc()
		if err != nil {
			err = fmt.Errorf("claim %s/%s (%s): %w", c.Namespace, c.Name, c.UID, err)
			d.log.V(1).Info("Prepare failed", "uid", c.UID, "err", err.Error())
			out[c.UID] = kubeletplugin.PrepareResult{Err: err}
			continue
		}
		cdi := make([]string, 0, len(devs))
		for _, dev := range devs {
			cdi = append(cdi, dev.CDIDeviceIDs...)
		}
		d.log.V(1).Info("Prepared claim", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "cdiDevices", cdi)
		out[c.UID] = kubeletplugin.PrepareResult{Devices: devs}
	}
	return out, nil
}

// wanted is one of a claim's allocated devices of this driver.
type wanted struct {
	index  int
	result resourceapi.DeviceRequestAllocationResult
	portID string
	driver string
	mac    string
}

// prepareClaim waits until the controller shows the claim as the owner of
// each of its devices, then per device writes the checkpoint, binds it and
// writes its device-info file, then the claim's CDI spec and device status.
// It is idempotent: a retry (kubelet restart, daemon restart) finds the
// checkpoints and the bound devices. On failure it gives back what it
// bound, unless the claim was prepared before this call (its pod may be
// using the devices: Unprepare gives them back).
func (d *Driver) prepareClaim(ctx context.Context, claim *resourceapi.ResourceClaim, ownerDeadline time.Time) ([]kubeletplugin.Device, error) {
	uid := string(claim.UID)
	if err := checkpoint.ValidateKey(checkpoint.Key{ContainerID: uid, IfName: "dev0"}); err != nil {
		return nil, fmt.Errorf("claim UID %q: %w", uid, err)
	}
	want, err := d.allocated(claim)
	if err != nil {
		return nil, err
	}
	if err := d.waitOwner(ctx, uid, want, ownerDeadline); err != nil {
		return nil, err
	}
	recs, err := d.store.List()
	if err != nil {
		return nil, err
	}
	if other, err := refuseOthers(recs, uid, want); err != nil {
		d.log.Info("Prepare refused: the device is prepared for another claim", "claim", uid, "other", other)
		return nil, err
	}
	undo := func(cause error) error { return cause }
	if !slices.ContainsFunc(recs, func(r checkpoint.Record) bool { return r.ContainerID == uid }) {
		undo = func(cause error) error { return d.undo(ctx, uid, cause) }
	}
	var devs []prepared
	for _, w := range want {
		p, err := d.bind(ctx, uid, w)
		if err != nil {
			return nil, undo(err)
		}
		devs = append(devs, p)
	}
	if err := d.cdi.WriteSpec(cdiSpec(uid, devs, d.opts.DevRoot), cdiSpecName(uid)); err != nil {
		return nil, undo(fmt.Errorf("write CDI spec: %w", err))
	}
	if err := d.setStatus(ctx, claim, devs); err != nil {
		// The devices are ready; the status is a report. The kubelet
		// retries a failed Prepare, which writes it again.
		return nil, fmt.Errorf("claim status: %w", err)
	}
	out := make([]kubeletplugin.Device, 0, len(devs))
	for i, p := range devs {
		out = append(out, kubeletplugin.Device{
			Requests: []string{p.request}, PoolName: d.opts.NodeName, DeviceName: p.device,
			CDIDeviceIDs: []string{cdiID(cdiDeviceName(uid, i))},
		})
	}
	return out, nil
}

// allocated returns the claim's devices of this driver, with the DPDK
// driver each is to be bound to.
func (d *Driver) allocated(claim *resourceapi.ResourceClaim) ([]wanted, error) {
	if claim.Status.Allocation == nil {
		return nil, errors.New("not allocated")
	}
	iommu, err := vIOMMU(d.sys)
	if err != nil {
		return nil, err
	}
	def := pci.DriverUIO
	if iommu {
		def = pci.DriverVFIO
	}
	var out []wanted
	for _, r := range claim.Status.Allocation.Devices.Results {
		if r.Driver != DriverName {
			continue
		}
		if r.Pool != d.opts.NodeName {
			return nil, fmt.Errorf("device %s is in pool %q, not this node's (%s)", r.Device, r.Pool, d.opts.NodeName)
		}
		port, ok := portOfDevice(r.Device)
		if !ok {
			return nil, fmt.Errorf("device %q is not a device of this driver (port-<port ID>)", r.Device)
		}
		cfg, err := configFor(claim.Status.Allocation.Devices.Config, r.Request)
		if err != nil {
			return nil, err
		}
		drv := cfg.Driver
		if drv == "" {
			drv = def
		}
		out = append(out, wanted{index: len(out), result: r, portID: port, driver: drv})
	}
	return out, nil
}

// configFor merges the opaque configurations of this driver that apply to
// request (the class's first, then the claim's, each in order: a later one
// wins). Unknown fields and unknown drivers are errors.
func configFor(cfgs []resourceapi.DeviceAllocationConfiguration, request string) (Config, error) {
	parent, _, _ := strings.Cut(request, "/")
	var out Config
	for _, src := range []resourceapi.AllocationConfigSource{resourceapi.AllocationConfigSourceClass, resourceapi.AllocationConfigSourceClaim} {
		for i, c := range cfgs {
			if c.Source != src || c.Opaque == nil || c.Opaque.Driver != DriverName {
				continue
			}
			if len(c.Requests) > 0 && !slices.Contains(c.Requests, request) && !slices.Contains(c.Requests, parent) {
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(c.Opaque.Parameters.Raw))
			dec.DisallowUnknownFields()
			var one Config
			if err := dec.Decode(&one); err != nil {
				return Config{}, fmt.Errorf("config[%d].opaque.parameters: %w", i, err)
			}
			switch one.Driver {
			case "":
				continue
			case pci.DriverUIO, pci.DriverVFIO:
				out.Driver = one.Driver
			default:
				return Config{}, fmt.Errorf("config[%d].opaque.parameters.driver: %q is not %s or %s", i, one.Driver, pci.DriverVFIO, pci.DriverUIO)
			}
		}
	}
	return out, nil
}

// waitOwner waits, up to deadline, until the KuryrNode shows every
// wanted device InUse by the claim, and fills in their MACs: a device is
// bound only by the MAC the controller recorded for the port it gave the
// claim. Its error says what the KuryrNode shows instead: the device
// missing, held by another consumer (taken meanwhile, or a pod's), or not
// yet given to the claim. It never names the other consumer (another
// tenant's pod or claim, in a message the claim's pod sees): the log does.
//
// A device not given yet is waited for, woken by the KuryrNode's watch:
// the controller gives it once it sees the allocation. A device the cached
// KuryrNode shows missing or another consumer's is one the controller
// cannot give the claim, unless the watch is behind the API server: the
// KuryrNode is then read once from the API server itself. If that read
// shows every device the claim's, the Prepare goes on; if it shows one
// missing or another's too, the Prepare fails at once with that; if it
// shows one not given yet, the wait goes on. One such read per Prepare of
// a claim, whatever the watch shows after it: a read that fails (logged)
// leaves the Prepare waiting on the watch as before, and the deadline ends
// any wait with what the KuryrNode shows then.
func (d *Driver) waitOwner(ctx context.Context, uid string, want []wanted, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	confirmed := false // the one read from the API server is made
	for {
		node, changed := d.node.snapshot()
		var cached *v1alpha1.KuryrNodeStatus
		if node != nil {
			cached = &node.Status
		}
		o := d.owned(cached, uid, want)
		if o.problem == "" {
			return nil
		}
		if o.cannot && !confirmed {
			confirmed = true
			live, err := kuryrnode.LiveStatus(ctx, d.live, d.opts.NodeName)
			switch {
			case err != nil:
				d.metrics.ownerReads.WithLabelValues(ownerReadFailed).Inc()
				if ctx.Err() == nil {
					d.log.Error(err, "Cannot confirm a device's owner with the API server; waiting for the KuryrNode's watch", "claim", uid)
				}
			default:
				if o = d.owned(live, uid, want); o.problem == "" {
					d.metrics.ownerReads.WithLabelValues(ownerReadListed).Inc()
					d.log.V(1).Info("A device's record had not reached the KuryrNode's watch yet; the API server shows it the claim's", "claim", uid)
					return nil
				}
				if o.cannot {
					d.metrics.ownerReads.WithLabelValues(ownerReadRefused).Inc()
					return d.ownerRefused(uid, o, start)
				}
				d.metrics.ownerReads.WithLabelValues(ownerReadPending).Inc()
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return d.ownerRefused(uid, o, start)
		}
	}
}

// ownerCheck is what a KuryrNode shows of a claim's devices.
type ownerCheck struct {
	// problem is the first device not the claim's, said for the claim's
	// pod ("" when each is the claim's); other is that device's other
	// consumer, for the log only.
	problem, other string
	// cannot: that device is missing or another consumer's, so the
	// controller cannot give it to the claim (not merely not yet).
	cannot bool
}

// owned checks want against node, the status of the node's KuryrNode (nil
// while none is seen), and fills in the MACs of the devices that are the
// claim's.
func (d *Driver) owned(node *v1alpha1.KuryrNodeStatus, uid string, want []wanted) ownerCheck {
	owner := OwnerPrefix + uid
	for i := range want {
		dev, ok := findDevice(node, want[i].portID)
		switch {
		case !ok:
			return ownerCheck{problem: fmt.Sprintf("device %s: port %s is not in KuryrNode %s's dpdkDevices", want[i].result.Device, want[i].portID, d.opts.NodeName), cannot: true}
		case dev.State == v1alpha1.DPDKDeviceInUse && dev.Owner == owner:
			want[i].mac = dev.MAC
		case dev.Owner != "" && dev.Owner != owner:
			return ownerCheck{problem: fmt.Sprintf("device %s is held by another consumer: KuryrNode %s shows it taken by someone else, so the controller cannot give it to %s",
				want[i].result.Device, d.opts.NodeName, owner), other: dev.Owner, cannot: true}
		default:
			return ownerCheck{problem: fmt.Sprintf("device %s: KuryrNode %s shows state %s, owner %q: the controller has not given it to %s yet",
				want[i].result.Device, d.opts.NodeName, dev.State, dev.Owner, owner)}
		}
	}
	return ownerCheck{}
}

// ownerRefused is the error of a Prepare whose devices are not the
// claim's, as o says, started at start.
func (d *Driver) ownerRefused(uid string, o ownerCheck, start time.Time) error {
	if o.other != "" {
		d.log.Info("Prepare refused: the device is another consumer's", "claim", uid, "owner", o.other)
	}
	return fmt.Errorf("after %s: %s (the kubelet retries)", time.Since(start).Round(time.Millisecond), o.problem)
}

// findDevice returns node's entry of status.dpdkDevices for port portID
// (none while the KuryrNode has not been seen).
func findDevice(node *v1alpha1.KuryrNodeStatus, portID string) (v1alpha1.DPDKDevice, bool) {
	if node == nil {
		return v1alpha1.DPDKDevice{}, false
	}
	return node.DPDKDevice(portID)
}

// refuseOthers fails when a checkpoint shows a wanted device (its port or
// its MAC) prepared for another claim, and returns that claim's UID for
// the log (the error does not name it: another tenant's).
func refuseOthers(recs []checkpoint.Record, uid string, want []wanted) (string, error) {
	for _, w := range want {
		for _, r := range recs {
			if r.ContainerID != uid && (r.PortID == w.portID || strings.EqualFold(r.MAC, w.mac)) {
				return r.ContainerID, fmt.Errorf("device %s (PCI %s): %w; refusing it to claim %s",
					w.result.Device, r.PCIAddress, ErrOtherClaim, uid)
			}
		}
	}
	return "", nil
}

// bind checkpoints and binds one device (binding.DPDK: checkpoint first,
// retried binds find the device through it) and finds its device nodes.
func (d *Driver) bind(ctx context.Context, uid string, w wanted) (prepared, error) {
	mac, err := pci.NormalizeMAC(w.mac)
	if err != nil {
		return prepared{}, fmt.Errorf("device %s: %w", w.result.Device, err)
	}
	hw, _ := net.ParseMAC(mac) // normalized: parses
	devInfo := filepath.Join(d.devInfoDir, strings.ReplaceAll(ExtendedResourceName, "/", "-")+"-"+w.portID+"-device.json")
	res, err := d.dpdk.Attach(ctx, binding.Request{
		ContainerID: uid, IfName: fmt.Sprintf("dev%d", w.index), MAC: hw, PortID: w.portID,
		CNINetwork: DriverName, DPDKDriver: w.driver, DeviceInfoFile: devInfo,
	})
	if err != nil {
		return prepared{}, fmt.Errorf("device %s: %w", w.result.Device, err)
	}
	p := prepared{
		request: w.result.Request, device: w.result.Device, portID: w.portID, mac: mac,
		pciAddress: res.PCIAddress, driver: w.driver, devInfo: devInfo,
	}
	switch w.driver {
	case pci.DriverVFIO:
		group, err := d.sys.VFIOGroupPath(d.opts.DevRoot, res.PCIAddress)
		if err != nil {
			return prepared{}, fmt.Errorf("device %s: %w", w.result.Device, err)
		}
		p.devNodes = []string{group, "/dev/vfio/vfio"}
		p.privileged = strings.Contains(group, "noiommu-")
	default:
		uio, err := d.sys.UIODevice(res.PCIAddress)
		if err != nil {
			return prepared{}, fmt.Errorf("device %s: %w", w.result.Device, err)
		}
		p.devNodes = []string{"/dev/" + uio}
		p.privileged = true
	}
	return p, nil
}

// undo gives back every device of the claim after a failed Prepare; the
// cause is returned, with the undo's own failure if any.
func (d *Driver) undo(ctx context.Context, uid string, cause error) error {
	if err := d.unprepare(context.WithoutCancel(ctx), uid); err != nil {
		return fmt.Errorf("%w (giving the devices back failed too, the checkpoints stay: %w)", cause, err)
	}
	return cause
}

// UnprepareResourceClaims gives each claim's devices back to their
// original driver and removes its CDI spec, device-info files and
// checkpoints. A claim with nothing prepared is a success.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		err := d.unprepare(ctx, string(c.UID))
		d.metrics.claims.WithLabelValues("unprepare", result(err)).Inc()
		if err == nil {
			d.clearStatus(ctx, c)
		}
		d.log.V(1).Info("Unprepared claim", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "err", err)
		out[c.UID] = err
	}
	return out, nil
}

func (d *Driver) unprepare(ctx context.Context, uid string) error {
	var errs []error
	if err := d.cdi.RemoveSpec(cdiSpecName(uid)); err != nil {
		// Still give the devices back: the spec's name is the claim's
		// alone, and Unprepare is retried until it is gone.
		errs = append(errs, fmt.Errorf("remove CDI spec of claim %s: %w", uid, err))
	}
	recs, err := d.store.List()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range recs {
		if r.ContainerID != uid {
			continue
		}
		if err := d.dpdk.Detach(ctx, r.ContainerID, r.IfName); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// privilegedNote is what a device's status says when its container must be
// privileged.
const privilegedNote = "the container must be privileged: uio_pci_generic and vfio-pci's no-IOMMU mode give DPDK physical addresses and port I/O (CAP_SYS_ADMIN, CAP_SYS_RAWIO); only vfio-pci with a vIOMMU works unprivileged"

// deviceData is a prepared device's status.devices[].data.
type deviceData struct {
	PCIAddress string `json:"pciAddress"`
	PortID     string `json:"portID"`
	Driver     string `json:"driver"`
	Privileged bool   `json:"privileged"`
}

// setStatus writes the claim's device status (server-side apply, this
// driver's fields only): the MAC as networkData.hardwareAddress, the PCI
// address, port and driver as data, and a Ready condition that says when the
// container must be privileged.
func (d *Driver) setStatus(ctx context.Context, claim *resourceapi.ResourceClaim, devs []prepared) error {
	st := resourceapply.ResourceClaimStatus()
	now := metav1.Now()
	for _, p := range devs {
		raw, err := json.Marshal(deviceData{PCIAddress: p.pciAddress, PortID: p.portID, Driver: p.driver, Privileged: p.privileged})
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("PCI device %s bound to %s; devices %s", p.pciAddress, p.driver, strings.Join(p.devNodes, ", "))
		if p.privileged {
			msg += "; " + privilegedNote
		}
		st.WithDevices(resourceapply.AllocatedDeviceStatus().
			WithDriver(DriverName).WithPool(d.opts.NodeName).WithDevice(p.device).
			WithData(runtime.RawExtension{Raw: raw}).
			WithNetworkData(resourceapply.NetworkDeviceData().WithHardwareAddress(p.mac)).
			WithConditions(metav1apply.Condition().WithType("Ready").WithStatus(metav1.ConditionTrue).
				WithReason("Prepared").WithMessage(msg).WithLastTransitionTime(now)))
	}
	ac := resourceapply.ResourceClaim(claim.Name, claim.Namespace).WithUID(claim.UID).WithStatus(st)
	_, err := d.kube.ResourceV1().ResourceClaims(claim.Namespace).ApplyStatus(ctx, ac,
		metav1.ApplyOptions{FieldManager: DriverName, Force: true})
	return err
}

// clearStatus removes this driver's device status from a claim that is
// unprepared; a claim that is gone or replaced needs nothing.
func (d *Driver) clearStatus(ctx context.Context, c kubeletplugin.NamespacedObject) {
	ac := resourceapply.ResourceClaim(c.Name, c.Namespace).WithUID(c.UID).WithStatus(resourceapply.ResourceClaimStatus())
	_, err := d.kube.ResourceV1().ResourceClaims(c.Namespace).ApplyStatus(ctx, ac, metav1.ApplyOptions{FieldManager: DriverName, Force: true})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		d.log.Error(err, "Clearing the device status of an unprepared claim", "claim", c.String())
	}
}
