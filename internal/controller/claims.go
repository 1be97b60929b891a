package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// The DRA driver's side of the pre-attached DPDK pool, as the contract
// between the controller, the daemon and the DRA kubelet plugin fixes it:
// the scheduler allocates device "port-<port ID>" of pool <node> of driver
// dpdk.kuryr-dpdk.io to a ResourceClaim; the controller, the one owner of
// the pool, gives that port to the claim (tag kuryr-claim=<claim UID>,
// owner "claim/<UID>" in the node's status.dpdkDevices) unless someone
// else has it, and gives it back to the pool when the claim is deallocated
// or deleted.
const (
	// draDriver is the DRA driver whose allocations name pool ports.
	draDriver = v1alpha1.DRADriverName
	// draDevicePrefix + a port ID is a device's name in the driver's
	// ResourceSlices.
	draDevicePrefix = v1alpha1.DRADeviceNamePrefix
)

// Event reasons on a ResourceClaim.
const (
	reasonDeviceInUse   = "DPDKDeviceInUse"
	reasonDeviceUnknown = "DPDKDeviceUnknown"
)

// portIDPattern is a Neutron port ID as the device names carry it: a
// lowercase UUID. The name comes from an allocation (the scheduler's,
// from slices a node publishes): it is checked before it is used.
var portIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

var (
	// errDeviceInUse: the device is another consumer's (a pod's, or
	// another claim's).
	errDeviceInUse = errors.New("in use by another consumer")
	// errDeviceUnknown: no pool of the node has the device.
	errDeviceUnknown = errors.New("not a pre-attached DPDK port of the node")
	// errDeviceNotReady: the device is the pool's but not attached and
	// ACTIVE yet.
	errDeviceNotReady = errors.New("not attached yet")
)

// claimedDevice is one device of our driver that a claim's allocation
// names.
type claimedDevice struct {
	node, portID, name string
}

// claimDevices returns the devices of our driver that claim's allocation
// names (none when it is not allocated), and an error for each result of
// our driver whose device is not "port-<port ID>".
func claimDevices(claim *resourcev1.ResourceClaim) ([]claimedDevice, []error) {
	if claim.Status.Allocation == nil {
		return nil, nil
	}
	var out []claimedDevice
	var errs []error
	for i, res := range claim.Status.Allocation.Devices.Results {
		if res.Driver != draDriver {
			continue
		}
		id, ok := strings.CutPrefix(res.Device, draDevicePrefix)
		if !ok || !portIDPattern.MatchString(id) || res.Pool == "" {
			errs = append(errs, fmt.Errorf("status.allocation.devices.results[%d]: device %q of pool %q is not %s<port ID> of a node's pool",
				i, res.Device, res.Pool, draDevicePrefix))
			continue
		}
		out = append(out, claimedDevice{node: res.Pool, portID: id, name: res.Device})
	}
	return out, errs
}

// namesOurDriver says whether o is a ResourceClaim whose allocation names
// a device of our driver.
func namesOurDriver(o client.Object) bool {
	c, ok := o.(*resourcev1.ResourceClaim)
	return ok && c.Status.Allocation != nil && slices.ContainsFunc(c.Status.Allocation.Devices.Results,
		func(r resourcev1.DeviceRequestAllocationResult) bool { return r.Driver == draDriver })
}

// claimEvents lets through the events of claims that name our driver, now
// or before the change (a deallocation), and every deletion of one.
var claimEvents = predicate.Funcs{
	CreateFunc:  func(e event.CreateEvent) bool { return namesOurDriver(e.Object) },
	UpdateFunc:  func(e event.UpdateEvent) bool { return namesOurDriver(e.ObjectOld) || namesOurDriver(e.ObjectNew) },
	DeleteFunc:  func(e event.DeleteEvent) bool { return namesOurDriver(e.Object) },
	GenericFunc: func(e event.GenericEvent) bool { return namesOurDriver(e.Object) },
}

// claimReconciler gives pool ports to the ResourceClaims they are
// allocated to, and takes them back.
type claimReconciler struct {
	r *PodReconciler
}

// setupClaims registers the claim controller (nested-dpdk pools on only:
// no other port is ever a device of our driver).
func (r *PodReconciler) setupClaims(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("kuryr-dpdk-claim").
		For(&resourcev1.ResourceClaim{}, builder.WithPredicates(claimEvents)).
		WithOptions(controller.Options{
			// One at a time: a claim's take and a sweep never cross.
			MaxConcurrentReconciles: 1,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 30*time.Second),
		}).
		Complete(&claimReconciler{r: r})
}

// Reconcile brings the pool ports a claim holds in line with its
// allocation: ports it holds and no longer names go back to their pool (a
// deallocation), devices it names are given to it. A claim that is gone
// has its ports given back by the sweep (by UID, since its name may
// already be another claim's).
func (c *claimReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ps := c.r.pools
	if !ps.isLoaded() {
		// Until the pools are rebuilt, nothing is known of any port.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	claim := &resourcev1.ResourceClaim{}
	if err := c.r.client.Get(ctx, req.NamespacedName, claim); apierrors.IsNotFound(err) {
		return retryDetach(ps.sweepClaims(ctx))
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("get ResourceClaim %s: %w", req, err)
	}
	want, bad := claimDevices(claim)
	for _, err := range bad {
		c.r.recorder.Eventf(claim, nil, corev1.EventTypeWarning, reasonDeviceUnknown, "TakeDevice", "%s", err.Error())
	}
	var errs []error
	nodes := map[string]bool{}
	for _, port := range ps.claimedBy(claim.UID) {
		if !slices.ContainsFunc(want, func(d claimedDevice) bool { return d.portID == port.ID }) {
			nodes[tagValue(port.Tags, tagPrefixPool)] = true
			errs = append(errs, ps.giveBack(ctx, port))
		}
	}
	notReady := false
	for _, d := range want {
		err := ps.claim(ctx, d, claim.UID)
		nodes[d.node] = true
		switch {
		case errors.Is(err, errDeviceInUse) || errors.Is(err, errDeviceUnknown):
			// The scheduler allocated what the pool cannot give: the
			// claim's Prepare on the node fails saying so, and is
			// retried; so is this, in case the device comes free.
			c.r.metrics.claimDevices.WithLabelValues("refused").Inc()
			reason := reasonDeviceInUse
			if errors.Is(err, errDeviceUnknown) {
				reason = reasonDeviceUnknown
			}
			c.r.recorder.Eventf(claim, nil, corev1.EventTypeWarning, reason, "TakeDevice", "%s", err.Error())
			errs = append(errs, err)
		case errors.Is(err, errDeviceNotReady):
			notReady = true
		case err != nil:
			errs = append(errs, err)
		}
	}
	for n := range nodes {
		if err := ps.publishNode(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("record the DPDK devices of node %s: %w", n, err))
		}
	}
	if res, err := retryDetach(errors.Join(errs...)); err != nil || !res.IsZero() {
		return res, err
	}
	if notReady {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// retryDetach turns an error that only says Nova is still detaching into
// a short requeue.
func retryDetach(err error) (ctrl.Result, error) {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		for _, e := range multi.Unwrap() {
			if e != nil && !errors.Is(e, errDetachPending) {
				return ctrl.Result{}, err
			}
		}
	}
	if errors.Is(err, errDetachPending) {
		return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
	}
	return ctrl.Result{}, err
}

// isLoaded says whether the pools were rebuilt from Neutron.
func (ps *pools) isLoaded() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.loaded
}

// claimedBy returns the pool ports the claim with uid holds.
func (ps *pools) claimedBy(uid types.UID) []openstack.Port {
	owner := ownerClaim + string(uid)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []openstack.Port
	for _, p := range ps.byKey {
		for _, c := range p.inUse {
			if c.owner == owner {
				out = append(out, c.port)
			}
		}
	}
	return out
}

// claim gives device d to the claim with uid: a Ready port of the
// node's nested-dpdk pools moves to in use (owner claim/<uid>) and gets
// the claim's tag, one Neutron call. A device the claim holds already is
// a success; one another consumer holds is errDeviceInUse.
func (ps *pools) claim(ctx context.Context, d claimedDevice, uid types.UID) error {
	owner := ownerClaim + string(uid)
	ps.mu.Lock()
	var p *pool
	var port openstack.Port
	var err error
	for k, pl := range ps.byKey {
		if k.node != d.node || k.driver != v1alpha1.DriverNestedDPDK || !pl.has(d.portID) {
			continue
		}
		p = pl
		if c, used := pl.inUse[d.portID]; used {
			_, unsure := pl.unsure[d.portID]
			switch {
			case c.owner != owner:
				err = fmt.Errorf("device %s of node %s is %w", d.name, d.node, errDeviceInUse)
			case !unsure:
				ps.mu.Unlock()
				return nil
			}
			port = c.port // the claim's own tag write failed: write it again
			break
		}
		i := slices.IndexFunc(pl.ready, func(w wiring) bool { return w.port.ID == d.portID })
		if i < 0 {
			err = fmt.Errorf("device %s of node %s is %w", d.name, d.node, errDeviceNotReady)
			break
		}
		port = pl.ready[i].port
		pl.ready = slices.Delete(pl.ready, i, i+1)
		pl.inUse[port.ID] = consumer{owner: owner, port: port}
		if pl.idle() < pl.size.Min {
			ps.wake()
		}
		break
	}
	ps.mu.Unlock()
	switch {
	case p == nil:
		return fmt.Errorf("device %s of node %s is %w", d.name, d.node, errDeviceUnknown)
	case err != nil:
		return err
	}
	if _, err := ps.handOut(ctx, p, port, owner, []string{tagPrefixClaim + string(uid)}); err != nil {
		return fmt.Errorf("give port %s to ResourceClaim %s: %w", port.ID, uid, err)
	}
	ps.r.metrics.claimDevices.WithLabelValues("taken").Inc()
	return nil
}

// giveBack returns port, which a claim held, to its pool (its claim tag
// removed, still attached), or detaches and deletes it when the pool does
// not want it (full, gone).
func (ps *pools) giveBack(ctx context.Context, port openstack.Port) error {
	ok, err := ps.recycle(ctx, port)
	if err == nil && !ok {
		err = ps.r.releasePort(ctx, port)
	}
	if err == nil {
		ps.r.metrics.claimDevices.WithLabelValues("returned").Inc()
	}
	return err
}

// sweepClaims gives back every pool port held by a claim that no longer
// exists or no longer names it: claims deleted (or deallocated) while
// the controller was down or before their event was handled.
func (ps *pools) sweepClaims(ctx context.Context) error {
	var list resourcev1.ResourceClaimList
	if err := ps.r.client.List(ctx, &list); err != nil {
		return fmt.Errorf("list ResourceClaims: %w", err)
	}
	wanted := map[string]bool{}
	for i := range list.Items {
		c := &list.Items[i]
		devs, _ := claimDevices(c)
		for _, d := range devs {
			wanted[ownerClaim+string(c.UID)+" "+d.portID] = true
		}
	}
	ps.mu.Lock()
	var stale []openstack.Port
	for _, p := range ps.byKey {
		for id, c := range p.inUse {
			if strings.HasPrefix(c.owner, ownerClaim) && !wanted[c.owner+" "+id] {
				stale = append(stale, c.port)
			}
		}
	}
	ps.mu.Unlock()
	var errs []error
	nodes := map[string]bool{}
	for _, port := range stale {
		nodes[tagValue(port.Tags, tagPrefixPool)] = true
		errs = append(errs, ps.giveBack(ctx, port))
	}
	for n := range nodes {
		if err := ps.publishNode(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("record the DPDK devices of node %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}
