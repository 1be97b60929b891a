package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// errTerminal marks a failure that retrying will not fix (bad subnet ID,
// forbidden, a node that cannot carry the driver): the pod's interfaces are
// rolled back and it waits for its spec to change.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

func terminal(err error) error { return &terminalError{err: err} }

func isTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t) || errors.Is(err, openstack.ErrTerminal)
}

// cloudTerminal turns a cloud answer that retrying cannot fix into a
// terminal error: a 404 on something the user named (a subnet), or a 4xx.
func cloudTerminal(err error, what string) error {
	if errors.Is(err, openstack.ErrNotFound) || errors.Is(err, openstack.ErrTerminal) {
		return terminal(fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// wiring is one interface's cloud resources as far as they exist.
type wiring struct {
	port   openstack.Port
	vlanID int
	active bool
}

// ensurePort returns the interface's port: existing (found by its tags) or
// created now.
func (r *PodReconciler) ensurePort(ctx context.Context, pod *corev1.Pod, node nodeInfo, req v1alpha1.InterfaceRequest, existing *openstack.Port) (openstack.Port, error) {
	if existing != nil {
		return *existing, nil
	}
	subnet, err := r.nets.subnet(ctx, req.SubnetID)
	if err != nil {
		return openstack.Port{}, cloudTerminal(err, fmt.Sprintf("subnet %s of interface %s", req.SubnetID, req.IfName))
	}
	spec := openstack.PortSpec{
		NetworkID:  subnet.NetworkID,
		SubnetID:   subnet.ID,
		Name:       portName(pod.Namespace, pod.Name, req.IfName),
		MACAddress: req.MAC,
		Tags:       []string{clusterTag(r.opts.ClusterID), podTag(pod.UID), tagPrefixIfName + req.IfName},
	}
	if len(req.IPs) > 0 {
		spec.IPAddress = req.IPs[0]
	}
	if len(req.SecurityGroups) > 0 {
		spec.SecurityGroups = req.SecurityGroups
	}
	switch req.Driver {
	case v1alpha1.DriverNestedVLAN:
		spec.DeviceOwner = DeviceOwnerKuryr
		if node.TrunkID != "" {
			spec.Tags = append(spec.Tags, tagPrefixTrunk+node.TrunkID)
		}
	case v1alpha1.DriverNestedMACVLAN:
		spec.DeviceOwner = DeviceOwnerKuryr
		spec.Tags = append(spec.Tags, tagPrefixParent+node.ParentPortID)
	case v1alpha1.DriverNestedDPDK:
		// Nova sets device_owner and device_id when it attaches the port.
	}
	p, err := r.cloud.CreatePort(ctx, spec)
	if err != nil {
		return openstack.Port{}, cloudTerminal(err, fmt.Sprintf("create port for interface %s on subnet %s", req.IfName, req.SubnetID))
	}
	r.metrics.portsCreated.WithLabelValues(string(req.Driver)).Inc()
	r.created.put(pod.UID, req.IfName, p.ID)
	return p, nil
}

// wire connects the port to the node as the driver says and reports whether
// it is ACTIVE.
func (r *PodReconciler) wire(ctx context.Context, node nodeInfo, req v1alpha1.InterfaceRequest, p openstack.Port) (wiring, error) {
	w := wiring{port: p}
	switch req.Driver {
	case v1alpha1.DriverNestedVLAN:
		if node.TrunkID == "" {
			return w, terminal(fmt.Errorf("interface %s is nested-vlan but node %s's port %s is not a trunk parent", req.IfName, node.Name, node.ParentPortID))
		}
		vid, err := r.nodes.addSubport(ctx, node.TrunkID, p.ID)
		if err != nil {
			if errors.Is(err, openstack.ErrNotFound) {
				// The trunk is gone (node VM rebuilt?): look the node up again.
				r.nodes.forget(node.Name)
			}
			return w, err
		}
		// The port is as fresh as this reconcile's read (or creation): a
		// port just made a subport is not ACTIVE yet, and the next poll
		// reads it again.
		w.vlanID = vid
		w.active = p.Status == openstack.PortStatusActive
	case v1alpha1.DriverNestedMACVLAN:
		// A MACVLAN port is never bound, so it never turns ACTIVE: it is
		// ready once the VM's port lets its address through.
		if err := r.addAddressPair(ctx, node.ParentPortID, p); err != nil {
			return w, err
		}
		w.active = true
	case v1alpha1.DriverNestedDPDK:
		switch {
		case p.DeviceID == node.ServerID:
		case p.DeviceID != "":
			return w, terminal(fmt.Errorf("port %s of interface %s is in use by device %s, not server %s", p.ID, req.IfName, p.DeviceID, node.ServerID))
		default:
			if node.ServerID == "" {
				return w, terminal(fmt.Errorf("node %s has no Nova server to attach port %s to", node.Name, p.ID))
			}
			iface, err := r.cloud.AttachInterface(ctx, node.ServerID, p.ID)
			if err != nil {
				return w, fmt.Errorf("attach port %s to server %s: %w", p.ID, node.ServerID, err)
			}
			r.metrics.attaches.Inc()
			if iface.PortState == openstack.PortStatusActive {
				w.active = true
				return w, nil
			}
		}
		w.active = p.Status == openstack.PortStatusActive && p.DeviceID == node.ServerID
	default:
		return w, terminal(fmt.Errorf("interface %s: unknown driver %q", req.IfName, req.Driver))
	}
	return w, nil
}

func (r *PodReconciler) addAddressPair(ctx context.Context, parentID string, p openstack.Port) error {
	if len(p.FixedIPs) == 0 {
		return fmt.Errorf("port %s has no IP address to allow on port %s", p.ID, parentID)
	}
	want := make([]openstack.AddressPair, 0, len(p.FixedIPs))
	for _, f := range p.FixedIPs {
		want = append(want, openstack.AddressPair{IPAddress: f.IPAddress, MACAddress: p.MACAddress})
	}
	_, err := r.modifyAddressPairs(ctx, parentID, func(pairs []openstack.AddressPair) []openstack.AddressPair {
		for _, w := range want {
			if !slices.Contains(pairs, w) {
				pairs = append(pairs, w)
			}
		}
		return pairs
	})
	if err != nil {
		return fmt.Errorf("allow %s on port %s: %w", p.MACAddress, parentID, err)
	}
	return nil
}

// describe fills an interface's status from its port, subnet and network.
func (r *PodReconciler) describe(ctx context.Context, req v1alpha1.InterfaceRequest, w wiring) (v1alpha1.InterfaceStatus, error) {
	st := v1alpha1.InterfaceStatus{
		IfName: req.IfName, Driver: req.Driver, Network: req.Network,
		PortID: w.port.ID, MAC: w.port.MACAddress, VLANID: w.vlanID,
	}
	for _, f := range w.port.FixedIPs {
		subnet, err := r.nets.subnet(ctx, f.SubnetID)
		if err != nil {
			return st, fmt.Errorf("subnet %s of port %s: %w", f.SubnetID, w.port.ID, err)
		}
		prefix, err := netip.ParsePrefix(subnet.CIDR)
		if err != nil {
			return st, fmt.Errorf("subnet %s has CIDR %q: %w", subnet.ID, subnet.CIDR, err)
		}
		st.IPs = append(st.IPs, fmt.Sprintf("%s/%d", f.IPAddress, prefix.Bits()))
		if st.Gateway == "" {
			st.Gateway = subnet.GatewayIP
		}
		for _, hr := range subnet.HostRoutes {
			st.Routes = append(st.Routes, v1alpha1.Route{Dst: hr.Destination, Gateway: hr.NextHop})
		}
		if len(subnet.DNSNameservers) > 0 && st.DNS == nil {
			st.DNS = &v1alpha1.DNS{Nameservers: subnet.DNSNameservers}
		}
		if st.MTU == 0 {
			network, err := r.nets.network(ctx, subnet.NetworkID)
			if err != nil {
				return st, fmt.Errorf("network %s of port %s: %w", subnet.NetworkID, w.port.ID, err)
			}
			st.MTU = network.MTU
		}
	}
	if req.DefaultRoute && st.Gateway != "" {
		st.Routes = append(st.Routes, v1alpha1.Route{Dst: defaultDst(st.Gateway), Gateway: st.Gateway})
	}
	return st, nil
}

func defaultDst(gw string) string {
	if a, err := netip.ParseAddr(gw); err == nil && a.Is6() {
		return "::/0"
	}
	return "0.0.0.0/0"
}
