package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// addressPairs is what nested-macvlan needs of Neutron: read the VM's port
// and rewrite its allowed address pairs with the revision check.
type addressPairs interface {
	GetPort(ctx context.Context, id string) (openstack.Port, error)
	UpdateAllowedAddressPairs(ctx context.Context, id string, pairs []openstack.AddressPair, revision int) (openstack.Port, error)
}

// macvlanDriver is nested-macvlan: the port's {ip, mac} is an allowed
// address pair of the node VM's port, a MACVLAN of the VM's NIC in the pod.
type macvlanDriver struct {
	cloud addressPairs
}

var _ portDriver = (*macvlanDriver)(nil)

func (d *macvlanDriver) prepare(node nodeInfo, spec *openstack.PortSpec) {
	spec.DeviceOwner = DeviceOwnerKuryr
	spec.Tags = append(spec.Tags, tagPrefixParent+node.ParentPortID)
}

func (d *macvlanDriver) wire(ctx context.Context, node nodeInfo, _ string, p openstack.Port) (wiring, error) {
	_, err := d.wireBatch(ctx, node, "", []openstack.Port{p})
	return wiring{port: p}, err
}

var _ poolWirer = (*macvlanDriver)(nil)

// wireBatch allows every port's {ip, mac} on node's port in one update.
func (d *macvlanDriver) wireBatch(ctx context.Context, node nodeInfo, _ string, ports []openstack.Port) (map[string]int, error) {
	var want []openstack.AddressPair
	for _, p := range ports {
		if len(p.FixedIPs) == 0 {
			return nil, fmt.Errorf("port %s has no IP address to allow on port %s", p.ID, node.ParentPortID)
		}
		for _, f := range p.FixedIPs {
			want = append(want, openstack.AddressPair{IPAddress: f.IPAddress, MACAddress: p.MACAddress})
		}
	}
	err := d.modify(ctx, node.ParentPortID, func(pairs []openstack.AddressPair) []openstack.AddressPair {
		for _, w := range want {
			if !slices.Contains(pairs, w) {
				pairs = append(pairs, w)
			}
		}
		return pairs
	})
	if err != nil {
		return nil, fmt.Errorf("allow %s (%d ports) on port %s: %w", want[0].MACAddress, len(ports), node.ParentPortID, err)
	}
	return nil, nil
}

// active: a MACVLAN port is never bound, so it never turns ACTIVE: it is
// ready once the VM's port lets its address through, which wire did.
func (d *macvlanDriver) active(nodeInfo, openstack.Port) bool { return true }

func (d *macvlanDriver) unwire(ctx context.Context, p openstack.Port) error {
	parent := tagValue(p.Tags, tagPrefixParent)
	if parent == "" {
		return nil
	}
	err := d.modify(ctx, parent, func(pairs []openstack.AddressPair) []openstack.AddressPair {
		return slices.DeleteFunc(pairs, func(a openstack.AddressPair) bool {
			return strings.EqualFold(a.MACAddress, p.MACAddress)
		})
	})
	if err != nil && !errors.Is(err, openstack.ErrNotFound) {
		return fmt.Errorf("remove %s from the allowed address pairs of port %s: %w", p.MACAddress, parent, err)
	}
	return nil
}

// modify reads port id, applies change to its allowed address pairs and
// writes them back with the revision check (If-Match), rereading and
// retrying when someone else changed the port in between.
func (d *macvlanDriver) modify(ctx context.Context, id string, change func([]openstack.AddressPair) []openstack.AddressPair) error {
	return openstack.Retry(ctx, openstack.DefaultBackoff, func(ctx context.Context) error {
		p, err := d.cloud.GetPort(ctx, id)
		if err != nil {
			return err
		}
		pairs := change(slices.Clone(p.AllowedAddressPairs))
		if slices.Equal(pairs, p.AllowedAddressPairs) {
			return nil
		}
		_, err = d.cloud.UpdateAllowedAddressPairs(ctx, id, pairs, p.RevisionNumber)
		return err
	}, openstack.RetryOnConflict())
}
