package controller

import (
	"context"
	"fmt"
	"net"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// checkRequestedMAC refuses, as a terminal error, a MAC a pod asks for (the
// networks annotation's "mac") that a port of the pod's node VM already
// has: its own port (the parent) or any port attached to its server (other
// pods' DPDK ports, pooled ports). Neutron checks MAC uniqueness per
// network only, so without this a pod could get a second device with the
// node's own MAC, and the node agent would be asked to bind the node's NIC
// (docs/security.md, "Devices"). No MAC asked for: nothing to check, no call.
func (r *PodReconciler) checkRequestedMAC(ctx context.Context, node nodeInfo, req v1alpha1.InterfaceRequest) error {
	if req.MAC == "" {
		return nil
	}
	want, err := net.ParseMAC(req.MAC)
	if err != nil {
		return terminal(fmt.Errorf("interface %s: requested mac %q: %w", req.IfName, req.MAC, err))
	}
	refuse := func(portID string) error {
		// The port may be another pod's: its ID is for the log only.
		return terminal(private(
			fmt.Sprintf("interface %s: requested mac %s is the MAC of a port of node %s; a pod may not take a MAC of its node's ports", req.IfName, want, node.Name),
			fmt.Errorf("interface %s: requested mac %s is the MAC of port %s of node %s; a pod may not take a MAC of its node's ports",
				req.IfName, want, portID, node.Name)))
	}
	if sameMAC(node.ParentMAC, want) {
		return refuse(node.ParentPortID)
	}
	if node.ServerID == "" {
		return nil
	}
	ports, err := r.cloud.ListPorts(ctx, openstack.PortFilter{DeviceID: node.ServerID})
	if err != nil {
		return fmt.Errorf("interface %s: list the ports of node %s to check the requested mac: %w", req.IfName, node.Name, err)
	}
	for _, p := range ports {
		if sameMAC(p.MACAddress, want) {
			return refuse(p.ID)
		}
	}
	return nil
}

func sameMAC(s string, mac net.HardwareAddr) bool {
	m, err := net.ParseMAC(s)
	return err == nil && m.String() == mac.String()
}
