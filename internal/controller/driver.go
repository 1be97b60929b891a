package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// portDriver is the cloud side of one driver: what its ports carry, how a
// port is wired to the node VM, when it is ready, and how the wiring is
// undone. Each driver lives in its own file (driver_vlan.go,
// driver_macvlan.go, driver_dpdk.go) and holds only the narrow OpenStack
// calls it needs; the reconciler picks one from the registry by the
// interface's driver, and release by the driver recorded on the port.
type portDriver interface {
	// prepare adds the driver's part to the spec of a port about to be
	// created for node: device owner and the tags release needs.
	prepare(node nodeInfo, spec *openstack.PortSpec)
	// wire connects port p to node (it may have been wired before: wire is
	// repeated until the interface is ready) and returns p as the cloud
	// left it, with the VLAN ID for nested-vlan.
	wire(ctx context.Context, node nodeInfo, ifName string, p openstack.Port) (wiring, error)
	// active says whether port p, as last read or wired, is ready for the
	// pod on node.
	active(node nodeInfo, p openstack.Port) bool
	// unwire undoes what wire did, found from p's tags and fields alone, so
	// that p can be deleted. Finding its target gone is a success. It
	// returns errPortGone when p itself no longer exists, and
	// errDetachPending while the cloud is still letting go of p.
	unwire(ctx context.Context, p openstack.Port) error
}

// poolWirer is a driver whose ports can be pooled: made and wired ahead of
// any pod, a batch at a time (pool.go).
type poolWirer interface {
	// wireBatch wires ports to node in as few requests as the driver can
	// (one for a batch) and returns the VLAN IDs by port (nested-vlan).
	// Ports already wired are left as they are. what names the ports in
	// errors.
	wireBatch(ctx context.Context, node nodeInfo, what string, ports []openstack.Port) (map[string]int, error)
}

// wiring is one interface's cloud resources as far as they exist.
type wiring struct {
	port   openstack.Port
	vlanID int
}

// errPortGone says a port vanished while it was being released: there is
// nothing left to delete.
var errPortGone = errors.New("port is gone")

// drivers maps each driver's name to its cloud side. It replaces every
// switch on the driver: a new driver is one more entry (docs/design.md,
// "Adding a driver").
type drivers map[v1alpha1.Driver]portDriver

// newDrivers builds the registry from the reconciler's clients: each driver
// gets only what it uses.
func newDrivers(cloud Cloud, ns *nodes, slots *hotplugSlots, attached *attachedPorts, m *metrics) drivers {
	return drivers{
		v1alpha1.DriverNestedVLAN:    &vlanDriver{trunks: ns},
		v1alpha1.DriverNestedMACVLAN: &macvlanDriver{cloud: cloud},
		v1alpha1.DriverNestedDPDK:    &dpdkDriver{cloud: cloud, slots: slots, attached: attached, attaches: m.attaches, detaches: m.detaches},
	}
}

// get returns driver d. An unknown driver is terminal: no retry brings it.
func (ds drivers) get(d v1alpha1.Driver) (portDriver, error) {
	drv, ok := ds[d]
	if !ok {
		return nil, terminal(fmt.Errorf("unknown driver %q", d))
	}
	return drv, nil
}
