package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/kuryrnode"
)

// Add implements cniapi.Handler: wait for the pod's interfaces, plug them,
// report them.
func (d *Daemon) Add(ctx context.Context, req *cniapi.Request) (res cnitypes.Result, err error) {
	start := time.Now()
	driver := "none"
	defer func() { d.observe(cniapi.CmdAdd, driver, start, err) }()
	if err := d.started(ctx); err != nil {
		return nil, cniErr(cniapi.CodeTryAgainLater, "%v", err)
	}
	if req.Args.PodNamespace == "" || req.Args.PodName == "" {
		return nil, cniErr(cniapi.CodeBadConfig, "CNI_ARGS lacks K8S_POD_NAMESPACE or K8S_POD_NAME: kuryr-cni serves Kubernetes pods only")
	}
	key := types.NamespacedName{Namespace: req.Args.PodNamespace, Name: req.Args.PodName}

	t := time.Now()
	kp, want, err := d.waitInterfaces(ctx, req, key)
	if err != nil {
		return nil, err
	}
	d.metrics.phases.WithLabelValues(phaseWaitInterfaces).Observe(time.Since(t).Seconds())
	if len(want) == 1 {
		driver = string(want[0].Driver)
	} else {
		driver = "all"
	}

	got, err := d.plugAll(ctx, req, kp, want)
	if err != nil {
		return nil, err
	}

	t = time.Now()
	if err := d.recordPlugged(ctx, key, kp.Spec.PodUID, got); err != nil {
		return nil, cniErr(cniapi.CodeTryAgainLater, "record the plugged interfaces of pod %s: %v", key, err)
	}
	if d.all(req) {
		if err := d.writeNetworkStatus(ctx, key, req.NetConf.Name, got); err != nil {
			return nil, cniErr(cniapi.CodeTryAgainLater, "write the network-status of pod %s: %v", key, err)
		}
	}
	d.metrics.phases.WithLabelValues(phaseReport).Observe(time.Since(t).Seconds())
	d.log.V(1).Info("plugged", "pod", key, "container", req.ContainerID, "interfaces", len(got), "took", time.Since(start))
	return chained(req.NetConf.PrevResult, cniResult(req.Netns, got)), nil
}

// waitInterfaces waits, event-driven, until the pod's KuryrPod (for this
// very pod: its UID) has the interfaces this call covers ACTIVE in the
// cloud, and the node's KuryrNode lists each nested-dpdk one as the pod's
// (ownership). A request the controller found invalid, or a pod whose
// interfaces failed, is answered at once with the controller's reason; so
// is a pod deleted while its ADD waits (the runtime keeps the sandbox being
// created, and with it the pod's deletion, until the ADD returns).
//
// The controller records a port in the KuryrNode before it marks the
// interface ACTIVE, but the two objects' watches may arrive in either
// order: when the cached KuryrPod says ACTIVE and the cached KuryrNode does
// not list a device as the pod's, the KuryrNode is read once from the API
// server itself. If that read lists it too, the ADD goes on; if not, the
// device is refused at once (code 999): nothing is bound. One such read per
// ADD, whatever happens after it: a read that fails leaves the ADD waiting
// on the informers as before, and a device still not recorded as the pod's
// when the wait ends is refused the same way.
func (d *Daemon) waitInterfaces(ctx context.Context, req *cniapi.Request, key types.NamespacedName) (*v1alpha1.KuryrPod, []v1alpha1.InterfaceRequest, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.InterfacesTimeout)
	defer cancel()
	var (
		kp   v1alpha1.KuryrPod
		want []v1alpha1.InterfaceRequest
		why  = "no KuryrPod yet: is kuryr-controller running?"
		seen bool // this pod's KuryrPod has been seen
		// refusal: the interfaces are ACTIVE, and a DPDK device is not
		// recorded as the pod's (yet); detail is for the log.
		refusal *cnitypes.Error
		detail  string
		// confirmed: the one read of the KuryrNode from the API server
		// this ADD may make is made.
		confirmed bool
	)
	err := d.waiters.until(ctx, key, func() (bool, error) {
		refusal = nil
		if err := d.client.Get(ctx, key, &kp); err != nil {
			if apierrors.IsNotFound(err) {
				if seen {
					return false, cniErr(cniapi.CodeInternal, "pod %s was deleted while its ADD waited: kuryr-controller released its interfaces", key)
				}
				return false, nil
			}
			return false, cniErr(cniapi.CodeTryAgainLater, "read KuryrPod %s: %v", key, err)
		}
		if req.Args.PodUID != "" && string(kp.Spec.PodUID) != req.Args.PodUID {
			why = fmt.Sprintf("the KuryrPod is for pod UID %s, not %s (an older pod of that name)", kp.Spec.PodUID, req.Args.PodUID)
			return false, nil
		}
		seen = true
		if kp.DeletionTimestamp != nil {
			return false, cniErr(cniapi.CodeInternal, "pod %s was deleted while its ADD waited: its KuryrPod is being deleted", key)
		}
		c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionSpecValid)
		switch {
		case c != nil && c.Status == metav1.ConditionFalse:
			return false, cniErr(cniapi.CodeBadConfig, "pod %s asks for networks kuryr-dpdk cannot give: %s", key, c.Message)
		case c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != kp.Generation:
			// The controller has not recorded its plan for this KuryrPod
			// yet: its interface list may be incomplete.
			why = "the controller has not planned the pod's interfaces yet"
			return false, nil
		}
		if c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionFalse && c.Reason == "InterfacesFailed" {
			return false, cniErr(cniapi.CodeInternal, "the interfaces of pod %s failed in the cloud and were rolled back: %s (recreate the pod once fixed)", key, c.Message)
		}
		var err error
		if want, err = d.covered(req, &kp); err != nil {
			return false, err
		}
		if len(want) == 0 {
			return false, cniErr(cniapi.CodeBadConfig, "the controller planned no interface for pod %s: in primary mode kuryr-controller must run with --primary too", key)
		}
		for _, ir := range want {
			st := findStatus(&kp, ir.IfName)
			if st == nil || (st.State != v1alpha1.StateActive && st.State != v1alpha1.StatePlugged) {
				why = fmt.Sprintf("interface %s is not ACTIVE in the cloud yet (%s)", ir.IfName, kp.Status.Summary)
				return false, nil
			}
		}
		if refusal, detail = d.ownership(d.cachedNode(), &kp, want); refusal == nil || confirmed {
			return refusal == nil, nil
		}
		// ACTIVE, and the cached KuryrNode does not say the device is the
		// pod's: it is late, or it never will. The API server says which.
		// One GET, at most one per ADD (the DRA driver's Prepare confirms its
		// refusals the same way).
		confirmed = true
		live, err := kuryrnode.LiveStatus(ctx, d.reader, d.opts.NodeName)
		if err != nil {
			d.metrics.ownerReads.WithLabelValues(ownerReadFailed).Inc()
			if ctx.Err() == nil {
				d.log.Error(err, "Cannot confirm a device's owner with the API server; waiting for the KuryrNode's watch", "pod", key)
			}
			return false, nil
		}
		if refusal, detail = d.ownership(live, &kp, want); refusal == nil {
			d.metrics.ownerReads.WithLabelValues(ownerReadListed).Inc()
			d.log.V(1).Info("A device's record had not reached the KuryrNode's watch yet; the API server lists it as the pod's", "pod", key)
			return true, nil
		}
		d.metrics.ownerReads.WithLabelValues(ownerReadRefused).Inc()
		return false, refusal
	})
	if err != nil {
		if refusal != nil && (ctx.Err() != nil || errors.Is(err, refusal)) {
			d.log.Info("Refused to bind a device not recorded as the pod's", "pod", key, "podUID", kp.Spec.PodUID,
				"reason", refusal.Msg, "kuryrNodeShows", detail)
			return nil, nil, refusal
		}
		if ctx.Err() != nil {
			return nil, nil, cniErr(cniapi.CodeTryAgainLater, "interfaces of pod %s not ready after %s: %s", key, d.opts.InterfacesTimeout, why)
		}
		return nil, nil, err
	}
	return &kp, want, nil
}

// covered returns the interfaces this call plugs: all of them for the
// primary CNI's call, else the one named by CNI_IFNAME.
func (d *Daemon) covered(req *cniapi.Request, kp *v1alpha1.KuryrPod) ([]v1alpha1.InterfaceRequest, error) {
	if d.all(req) {
		return kp.Spec.Interfaces, nil
	}
	for _, ir := range kp.Spec.Interfaces {
		if ir.IfName == req.IfName {
			return []v1alpha1.InterfaceRequest{ir}, nil
		}
	}
	var names []string
	for _, ir := range kp.Spec.Interfaces {
		names = append(names, ir.IfName)
	}
	return nil, cniErr(cniapi.CodeBadConfig, "pod %s/%s has no kuryr-dpdk interface %q (it has %s); check the pod's %s annotation",
		kp.Namespace, kp.Name, req.IfName, strings.Join(names, ", "), v1alpha1.NetworksAnnotation)
}

func findStatus(kp *v1alpha1.KuryrPod, ifName string) *v1alpha1.InterfaceStatus {
	for i := range kp.Status.Interfaces {
		if kp.Status.Interfaces[i].IfName == ifName {
			return &kp.Status.Interfaces[i]
		}
	}
	return nil
}

// plugAll plugs the interfaces want of kp at once (a DPDK device's bind
// and the kernel interfaces' netlink calls do not wait for each other) and
// returns them in want's order. Before anything is plugged, every request
// is made and held (binding.Set.Hold): while another pod's attachment on
// this node, plugged or still being plugged, holds the port of one of
// them (or its MAC, or its VLAN tag), nothing is plugged and the answer is
// "try again later" naming that attachment. It waits for every plug to end; the
// error is the first one in want's order. Whatever was plugged before an
// error stays, with its checkpoint, for the DEL the runtime makes after a
// failed ADD, as when the interfaces were plugged one after the other.
func (d *Daemon) plugAll(ctx context.Context, req *cniapi.Request, kp *v1alpha1.KuryrPod, want []v1alpha1.InterfaceRequest) ([]plugged, error) {
	got := make([]plugged, len(want))
	plans := make([]binding.Plan, len(want))
	for i, ir := range want {
		var err error
		if got[i], plans[i], err = d.plan(req, kp.Spec.PodUID, ir, *findStatus(kp, ir.IfName)); err != nil {
			return nil, err
		}
	}
	release, err := d.bindings.Hold(plans...)
	if err != nil {
		if held, ok := errors.AsType[*binding.HeldError](err); ok {
			return nil, cniErr(cniapi.CodeTryAgainLater, "interface %s: %v (a retry plugs it once that attachment is undone)",
				held.Want.IfName, err)
		}
		return nil, cniErr(cniapi.CodeTryAgainLater, "pod %s/%s: %v", kp.Namespace, kp.Name, err)
	}
	defer release()
	errs := make([]error, len(want))
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { errs[i] = d.plug(ctx, &got[i], plans[i].Driver) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return got, nil
}

// plan makes the binding request of one interface and picks its binding
// driver by its driver name (a claim's device: the driver that reports it).
func (d *Daemon) plan(req *cniapi.Request, podUID types.UID, ir v1alpha1.InterfaceRequest, st v1alpha1.InterfaceStatus) (plugged, binding.Plan, error) {
	p := plugged{ir: ir, st: st}
	drv, err := d.bindings.ForDriver(string(ir.Driver))
	if err != nil {
		return p, binding.Plan{}, cniErr(cniapi.CodeBadConfig, "interface %s: %v", ir.IfName, err)
	}
	if p.req, err = bindingRequest(req, req.Netns, ir, st); err != nil {
		return p, binding.Plan{}, err
	}
	p.req.PodUID = string(podUID)
	if c := ir.ResourceClaim; c != nil {
		// A claim's device, bound by its Prepare: reported, not bound
		// again; its claim and port as the controller planned them.
		drv, p.req.ClaimUID, p.req.PortID = d.bindings.Claimed(), string(c.UID), c.PortID
	}
	return p, binding.Plan{Driver: drv, Request: p.req}, nil
}

// plug puts one interface in the pod (or binds its device) through its
// binding driver, which waits for a DPDK device and keeps the checkpoint.
func (d *Daemon) plug(ctx context.Context, p *plugged, drv binding.Driver) (err error) {
	ir, st := p.ir, p.st
	t := time.Now()
	if p.res, err = drv.Attach(ctx, p.req); err != nil {
		if errors.Is(err, binding.ErrClaimNotPrepared) {
			return cniErr(cniapi.CodeTryAgainLater, "interface %s is the device of ResourceClaim %s: %v", ir.IfName, ir.ResourceClaim.Name, err)
		}
		if errors.Is(err, binding.ErrDeviceInfoPath) {
			return cniErr(cniapi.CodeBadConfig, "interface %s: runtimeConfig.CNIDeviceInfoFile refused: %v", ir.IfName, err)
		}
		if errors.Is(err, binding.ErrDeviceNotFound) {
			return cniErr(cniapi.CodeTryAgainLater, "interface %s: the device with MAC %s (port %s) has not appeared in this VM: %v",
				ir.IfName, st.MAC, st.PortID, err)
		}
		return fmt.Errorf("interface %s (MAC %s): %w", ir.IfName, st.MAC, err)
	}
	took := time.Since(t)
	if p.res.PCIAddress == "" {
		d.metrics.phases.WithLabelValues(phaseNetlink).Observe(took.Seconds())
		return nil
	}
	if p.res.DeviceWait > 0 {
		d.metrics.phases.WithLabelValues(phaseWaitDevice).Observe(p.res.DeviceWait.Seconds())
	}
	d.metrics.phases.WithLabelValues(phaseBind).Observe((took - p.res.DeviceWait).Seconds())
	return nil
}

// recordPlugged marks the interfaces Plugged in the KuryrPod, with what
// the daemon knows (PCI address, drivers).
func (d *Daemon) recordPlugged(ctx context.Context, key types.NamespacedName, uid types.UID, got []plugged) error {
	return d.updateStatus(ctx, key, uid, func(st *v1alpha1.KuryrPodStatus) {
		for _, p := range got {
			for i := range st.Interfaces {
				s := &st.Interfaces[i]
				if s.IfName != p.ir.IfName {
					continue
				}
				s.State, s.Message = v1alpha1.StatePlugged, ""
				s.PCIAddress, s.OriginalDriver, s.BoundDriver = p.res.PCIAddress, p.res.OriginalDriver, p.res.BoundDriver
			}
		}
		st.Summary = v1alpha1.InterfacesSummary(st.Interfaces)
	})
}
