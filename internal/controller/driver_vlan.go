package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// trunkSubports is what nested-vlan needs: a port made a subport of a
// node's trunk with a VLAN ID free on that trunk, and taken off again.
// *nodes is one: it keeps the VLAN IDs in use per trunk.
type trunkSubports interface {
	addSubport(ctx context.Context, trunkID, portID string) (int, error)
	removeSubport(ctx context.Context, trunkID, portID string) error
	// forget drops what is cached of node, e.g. after its trunk vanished.
	forget(node string)
}

var _ trunkSubports = (*nodes)(nil)

// vlanDriver is nested-vlan: the port is a subport of the node VM's trunk,
// a VLAN sub-interface of the VM's NIC in the pod.
type vlanDriver struct {
	trunks trunkSubports
}

var _ portDriver = (*vlanDriver)(nil)

func (d *vlanDriver) prepare(node nodeInfo, spec *openstack.PortSpec) {
	spec.DeviceOwner = DeviceOwnerKuryr
	if node.TrunkID != "" {
		spec.Tags = append(spec.Tags, tagPrefixTrunk+node.TrunkID)
	}
}

func (d *vlanDriver) wire(ctx context.Context, node nodeInfo, ifName string, p openstack.Port) (wiring, error) {
	w := wiring{port: p}
	if node.TrunkID == "" {
		return w, terminal(fmt.Errorf("interface %s is nested-vlan but node %s's port %s is not a trunk parent", ifName, node.Name, node.ParentPortID))
	}
	vid, err := d.trunks.addSubport(ctx, node.TrunkID, p.ID)
	if err != nil {
		if errors.Is(err, openstack.ErrNotFound) {
			// The trunk is gone (node VM rebuilt?): look the node up again.
			d.trunks.forget(node.Name)
		}
		return w, err
	}
	w.vlanID = vid
	return w, nil
}

// active: the port is as fresh as this reconcile's read (or creation): a
// port just made a subport is not ACTIVE yet, and the next poll reads it
// again.
func (d *vlanDriver) active(_ nodeInfo, p openstack.Port) bool {
	return p.Status == openstack.PortStatusActive
}

func (d *vlanDriver) unwire(ctx context.Context, p openstack.Port) error {
	trunk := tagValue(p.Tags, tagPrefixTrunk)
	if trunk == "" {
		// Made for a node without a trunk: never a subport.
		return nil
	}
	return d.trunks.removeSubport(ctx, trunk, p.ID)
}
