package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

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

// ensurePort returns the interface's port: existing (found by its tags) or
// created now, with the cluster's tags, the pod's, and the driver's part.
func (r *PodReconciler) ensurePort(ctx context.Context, pod *corev1.Pod, node nodeInfo, req v1alpha1.InterfaceRequest,
	drv portDriver, existing *openstack.Port) (openstack.Port, error) {
	if existing != nil {
		return *existing, nil
	}
	if err := r.checkRequestedMAC(ctx, node, req); err != nil {
		return openstack.Port{}, err
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
		Tags:       append(portTags(r.opts.ClusterID, req.Driver), ownerTags(pod.UID, req.IfName)...),
	}
	if len(req.IPs) > 0 {
		spec.IPAddress = req.IPs[0]
	}
	if len(req.SecurityGroups) > 0 {
		spec.SecurityGroups = req.SecurityGroups
	}
	drv.prepare(node, &spec)
	p, err := r.cloud.CreatePort(ctx, spec)
	if err != nil {
		return openstack.Port{}, cloudTerminal(err, fmt.Sprintf("create port for interface %s on subnet %s", req.IfName, req.SubnetID))
	}
	r.metrics.portsCreated.WithLabelValues(string(req.Driver)).Inc()
	r.created.put(pod.UID, req.IfName, p.ID)
	return p, nil
}

// wireOne creates (unless it exists) and wires one interface's port with
// its driver, and returns its status entry, starting from entry.
func (r *PodReconciler) wireOne(ctx context.Context, pod *corev1.Pod, node nodeInfo, req v1alpha1.InterfaceRequest,
	existing *openstack.Port, entry v1alpha1.InterfaceStatus) (v1alpha1.InterfaceStatus, error) {
	drv, err := r.drivers.get(req.Driver)
	if err != nil {
		entry.Message = publicText(err)
		return entry, err
	}
	var w wiring
	pooled := false
	if existing == nil {
		// Taken moments ago (the informer has not brought the status yet),
		// or taken now: wired ahead of any pod, the tag write was its one
		// call.
		if w, pooled = r.created.pooled(pod.UID, req.IfName); !pooled {
			w, pooled, err = r.pools.take(ctx, node, pod.UID, req)
			if err != nil {
				entry.Message = publicText(err)
				return entry, err
			}
			if pooled {
				r.created.putPooled(pod.UID, req.IfName, w)
			}
		}
	}
	if !pooled {
		port, err := r.ensurePort(ctx, pod, node, req, drv, existing)
		if err != nil {
			entry.Message = publicText(err)
			return entry, err
		}
		w, err = drv.wire(ctx, node, req.IfName, port)
		if err != nil {
			entry.PortID, entry.Message = port.ID, publicText(err)
			return entry, err
		}
	}
	entry, err = r.describe(ctx, req, w)
	entry.State, entry.Message = v1alpha1.StatePending, "waiting for the port to become ACTIVE"
	if drv.active(node, w.port) {
		entry.State, entry.Message = v1alpha1.StateActive, ""
	}
	if err != nil {
		entry.Message = publicText(err)
	}
	return entry, err
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
