package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// errDetachPending says Nova has been asked to detach a port and has not
// finished: the port must not be deleted yet. Try again shortly.
var errDetachPending = errors.New("detach still in progress")

// podPorts lists the ports this cluster made for the pod with uid.
func (r *PodReconciler) podPorts(ctx context.Context, uid types.UID) ([]openstack.Port, error) {
	ports, err := r.cloud.ListPorts(ctx, openstack.PortFilter{Tags: []string{clusterTag(r.opts.ClusterID), podTag(uid)}})
	if err != nil {
		return nil, fmt.Errorf("list ports of pod %s: %w", uid, err)
	}
	return ports, nil
}

// releasePod unwires and deletes every port of the pod with uid, as Neutron
// knows them (so it works whatever the KuryrPod says or lost). It returns
// errDetachPending while Nova is still detaching a port.
func (r *PodReconciler) releasePod(ctx context.Context, uid types.UID) error {
	r.created.forget(uid)
	ports, err := r.podPorts(ctx, uid)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ports {
		errs = append(errs, r.releasePort(ctx, p))
	}
	return errors.Join(errs...)
}

// releasePort undoes what wired port p (subport, address pair or Nova
// attachment), then deletes it. Each step that finds its target gone is a
// success, so it can be repeated after any failure.
func (r *PodReconciler) releasePort(ctx context.Context, p openstack.Port) error {
	switch {
	case tagValue(p.Tags, tagPrefixTrunk) != "":
		if err := r.nodes.removeSubport(ctx, tagValue(p.Tags, tagPrefixTrunk), p.ID); err != nil {
			return err
		}
	case tagValue(p.Tags, tagPrefixParent) != "":
		if err := r.removeAddressPair(ctx, tagValue(p.Tags, tagPrefixParent), p); err != nil {
			return err
		}
	case p.DeviceID != "" && strings.HasPrefix(p.DeviceOwner, "compute:") && p.DeviceOwner != DeviceOwnerKuryr:
		err := r.cloud.DetachInterface(ctx, p.DeviceID, p.ID)
		switch {
		case errors.Is(err, openstack.ErrConflict):
			// Nova is busy with this port (a detach already under way).
			return fmt.Errorf("detach port %s from server %s: %w (%w)", p.ID, p.DeviceID, errDetachPending, err)
		case err != nil && !errors.Is(err, openstack.ErrNotFound):
			return fmt.Errorf("detach port %s from server %s: %w", p.ID, p.DeviceID, err)
		}
		r.metrics.detaches.Inc()
		fresh, err := r.cloud.GetPort(ctx, p.ID)
		switch {
		case errors.Is(err, openstack.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("read port %s after detach: %w", p.ID, err)
		case fresh.DeviceID != "":
			return fmt.Errorf("port %s still attached to server %s: %w", p.ID, fresh.DeviceID, errDetachPending)
		}
	}
	if err := r.cloud.DeletePort(ctx, p.ID); err != nil {
		return fmt.Errorf("delete port %s: %w", p.ID, err)
	}
	r.metrics.portsDeleted.Inc()
	return nil
}

func (r *PodReconciler) removeAddressPair(ctx context.Context, parentID string, p openstack.Port) error {
	_, err := r.modifyAddressPairs(ctx, parentID, func(pairs []openstack.AddressPair) []openstack.AddressPair {
		return slices.DeleteFunc(pairs, func(a openstack.AddressPair) bool {
			return strings.EqualFold(a.MACAddress, p.MACAddress)
		})
	})
	if err != nil && !errors.Is(err, openstack.ErrNotFound) {
		return fmt.Errorf("remove %s from the allowed address pairs of port %s: %w", p.MACAddress, parentID, err)
	}
	return nil
}

// modifyAddressPairs reads port id, applies change to its allowed address
// pairs and writes them back with the revision check (If-Match), rereading
// and retrying when someone else changed the port in between.
func (r *PodReconciler) modifyAddressPairs(ctx context.Context, id string, change func([]openstack.AddressPair) []openstack.AddressPair) (openstack.Port, error) {
	var out openstack.Port
	err := openstack.Retry(ctx, openstack.DefaultBackoff, func(ctx context.Context) error {
		p, err := r.cloud.GetPort(ctx, id)
		if err != nil {
			return err
		}
		pairs := change(slices.Clone(p.AllowedAddressPairs))
		if slices.Equal(pairs, p.AllowedAddressPairs) {
			out = p
			return nil
		}
		out, err = r.cloud.UpdateAllowedAddressPairs(ctx, id, pairs, p.RevisionNumber)
		return err
	}, openstack.RetryOnConflict())
	return out, err
}
