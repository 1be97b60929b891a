package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// podPorts lists the ports this cluster made for the pod with uid, in the
// controller's project. A pod's UID is unique across clusters, so its
// ports of the previous tag schema (the cluster name without its UID) are
// its own too; a port naming another cluster's UID is not.
func (r *PodReconciler) podPorts(ctx context.Context, uid types.UID) ([]openstack.Port, error) {
	c := r.cluster()
	ports, err := r.cloud.ListPorts(ctx, openstack.PortFilter{Tags: []string{clusterTag(c.name), podTag(uid)}, ProjectID: r.cloud.ProjectID()})
	if err != nil {
		return nil, fmt.Errorf("list ports of pod %s: %w", uid, err)
	}
	return slices.DeleteFunc(ports, func(p openstack.Port) bool { return !c.owns(p) && !c.legacy(p) }), nil
}

// errNotOwned says a port named by a KuryrPod's status is not the one the
// controller made for that interface: the status was written by someone
// else (a node's daemon may write the status, and the controller trusts
// no port ID from it unchecked).
var errNotOwned = errors.New("not this interface's port")

// checkOwner refuses port p for interface ifName of the pod with uid
// unless p carries this cluster's tags (or its name alone: the previous
// schema), the pod's and the interface's, and is in the controller's
// project. The error is terminal; it names which check failed, not whose
// the port is (the message reaches the pod's Events).
func (r *PodReconciler) checkOwner(p openstack.Port, uid types.UID, ifName string) error {
	c := r.cluster()
	var bad []string
	if !c.owns(p) && !c.legacy(p) {
		bad = append(bad, "cluster")
	}
	if tagValue(p.Tags, tagPrefixPod) != string(uid) {
		bad = append(bad, "pod")
	}
	if tagValue(p.Tags, tagPrefixIfName) != ifName {
		bad = append(bad, "interface")
	}
	if project := r.cloud.ProjectID(); project != "" && p.ProjectID != project {
		bad = append(bad, "project")
	}
	if len(bad) == 0 {
		return nil
	}
	return terminal(fmt.Errorf("status.interfaces[%s].portID names port %s, whose %s differ from this pod's: refused: %w",
		ifName, p.ID, strings.Join(bad, ", "), errNotOwned))
}

// releasePod unwires and deletes every port of the pod with uid, as Neutron
// knows them (so it works whatever the KuryrPod says or lost). With
// recycle (the daemon has unplugged them) a pooled port goes back to its
// pool instead when the pool wants it. It returns errDetachPending while
// Nova is still detaching a port.
func (r *PodReconciler) releasePod(ctx context.Context, uid types.UID, recycle bool) error {
	r.created.forget(uid)
	ports, err := r.podPorts(ctx, uid)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ports {
		if recycle {
			ok, err := r.pools.recycle(ctx, p)
			if err != nil {
				errs = append(errs, err)
			}
			if ok || err != nil {
				continue
			}
		}
		errs = append(errs, r.releasePort(ctx, p))
	}
	return errors.Join(errs...)
}

// releasePort undoes what wired port p, by the driver recorded on it
// (subport, address pair or Nova attachment), then deletes it. Each step
// that finds its target gone is a success, so it can be repeated after any
// failure. It needs no owner: a port no pod has yet releases the same way.
func (r *PodReconciler) releasePort(ctx context.Context, p openstack.Port) error {
	name, err := portDriverOf(p)
	if err != nil {
		return err
	}
	if name != "" {
		drv, err := r.drivers.get(name)
		if err != nil {
			return fmt.Errorf("release port %s: %w", p.ID, err)
		}
		err = drv.unwire(ctx, p)
		if p.DeviceID != "" && (err == nil || errors.Is(err, errPortGone)) &&
			(r.slots.status(p.DeviceID) != nil || r.attached != nil && name == v1alpha1.DriverNestedDPDK && unpooledOwner(p) != "") {
			// A counted hot-plug slot of that VM is free again, or the
			// pod's own port is no longer attached to it.
			r.recordServer(ctx, p.DeviceID)
		}
		switch {
		case errors.Is(err, errPortGone):
			return nil
		case err != nil:
			return err
		}
	}
	if err := r.cloud.DeletePort(ctx, p.ID); err != nil {
		return fmt.Errorf("delete port %s: %w", p.ID, err)
	}
	r.metrics.portsDeleted.Inc()
	r.pools.released(p)
	return nil
}
