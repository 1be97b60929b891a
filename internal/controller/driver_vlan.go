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
	// addSubports adds a batch of ports in one request and returns their
	// VLAN IDs by port.
	addSubports(ctx context.Context, trunkID string, portIDs []string) (map[string]int, error)
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
	ids, err := d.wireBatch(ctx, node, "interface "+ifName, []openstack.Port{p})
	w.vlanID = ids[p.ID]
	return w, err
}

var _ poolWirer = (*vlanDriver)(nil)

// wireBatch makes ports subports of node's trunk in one request; ports
// already subports keep their VLAN IDs.
func (d *vlanDriver) wireBatch(ctx context.Context, node nodeInfo, what string, ports []openstack.Port) (map[string]int, error) {
	if node.TrunkID == "" {
		return nil, terminal(fmt.Errorf("%s is nested-vlan but node %s's port %s is not a trunk parent", what, node.Name, node.ParentPortID))
	}
	ids := make([]string, 0, len(ports))
	for _, p := range ports {
		ids = append(ids, p.ID)
	}
	vids, err := d.trunks.addSubports(ctx, node.TrunkID, ids)
	if err != nil && errors.Is(err, openstack.ErrNotFound) {
		// The trunk is gone (node VM rebuilt?): look the node up again.
		d.trunks.forget(node.Name)
	}
	return vids, err
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
