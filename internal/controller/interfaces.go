package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

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
		Tags:       append(portTags(r.cluster(), req.Driver), ownerTags(pod.UID, req.IfName)...),
	}
	if spec.IPs, err = fixedIPs(req, subnet); err != nil {
		return openstack.Port{}, err
	}
	if len(req.SecurityGroups) > 0 {
		spec.SecurityGroups = req.SecurityGroups
	}
	spec.PortSecurityEnabled = req.PortSecurityEnabled
	for _, ap := range req.AllowedAddressPairs {
		spec.AllowedAddressPairs = append(spec.AllowedAddressPairs, openstack.AddressPair{IPAddress: ap.IPAddress, MACAddress: ap.MACAddress})
	}
	drv.prepare(node, &spec)
	// Pods that arrive together share one bulk create.
	sent := r.now()
	p, err := r.creates.do(ctx, spec.NetworkID, spec)
	if err != nil {
		if openstack.Unanswered(err) {
			// Neutron may still make the port: wireOne makes no other
			// before lostCreateWait has passed, and each reconcile until
			// then looks for it by tag.
			r.created.lost(pod.UID, req.IfName, r.now().Add(lostCreateWait(r.now().Sub(sent))))
		}
		return openstack.Port{}, cloudTerminal(err, fmt.Sprintf("create port for interface %s on subnet %s", req.IfName, req.SubnetID))
	}
	r.metrics.portsCreated.WithLabelValues(string(req.Driver)).Inc()
	r.created.put(pod.UID, req.IfName, p.ID)
	return p, nil
}

// errLostCreate says an interface waits for the port of a create that
// went unanswered (a timeout, a 504): no other is made meanwhile.
var errLostCreate = errors.New("the create of the interface's port got no answer and Neutron may still make it")

// lostCreateWait is how long after an unanswered create, which took took,
// its port may still appear: Neutron finishes what it accepted, and on the
// loaded bench machine a bulk create took more than twice the client's
// timeout (a pool waits four default timeouts: lostWait). A refused
// connection, which took next to nothing, waits next to nothing.
func lostCreateWait(took time.Duration) time.Duration {
	return 4 * took
}

// fixedIPs are the addresses the pod asked for (every entry of the
// networks annotation's ips), each on the NAD's subnet when that holds it;
// another address is left for Neutron to place on the subnet of the same
// network that holds it (a dual-stack network's other family), or to refuse
// (400, terminal). An address the subnet holds is checked here, so that the
// error names the field.
func fixedIPs(req v1alpha1.InterfaceRequest, subnet openstack.Subnet) ([]openstack.FixedIP, error) {
	if len(req.IPs) == 0 {
		return nil, nil
	}
	cidr, err := netip.ParsePrefix(subnet.CIDR)
	if err != nil {
		return nil, fmt.Errorf("subnet %s has CIDR %q: %w", subnet.ID, subnet.CIDR, err)
	}
	out := make([]openstack.FixedIP, 0, len(req.IPs))
	for i, ip := range req.IPs {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, terminal(fmt.Errorf("interface %s: ips[%d] %q is not an IP address", req.IfName, i, ip))
		}
		f := openstack.FixedIP{IPAddress: a.String()}
		if cidr.Contains(a) {
			f.SubnetID = subnet.ID
		}
		out = append(out, f)
	}
	return out, nil
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
		if until := r.created.lostUntil(pod.UID, req.IfName); r.now().Before(until) {
			// The port of an unanswered create may still appear: taking
			// or making another now could give the interface two.
			err := fmt.Errorf("%w: looked for by its tags until %s", errLostCreate, until.UTC().Format(time.RFC3339))
			entry.State, entry.Message = v1alpha1.StatePending, publicText(err)
			return entry, err
		}
		// Taken moments ago (the informer has not brought the status yet),
		// or taken now: wired ahead of any pod, the tag write was its one
		// call.
		if w, pooled = r.created.pooled(pod.UID, req.IfName); !pooled {
			w, pooled, err = r.pools.take(ctx, node, pod.UID, req, waitedForPool(entry))
			if errors.Is(err, errWaitPool) {
				entry.State, entry.Message = v1alpha1.StatePending, err.Error()
				return entry, nil
			}
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
			var full *errNoHotplugSlot
			if errors.As(err, &full) {
				r.recorder.Eventf(pod, nil, corev1.EventTypeWarning, reasonNoSlot, "AttachInterface", "interface %s waits: %s", req.IfName, err.Error())
			}
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
// The default route (req.DefaultRoute) goes via the gateways the pod named
// (NPWG default-route), each of which must lie on one of the port's
// subnets, else via the first subnet's gateway; the subnets' own default
// host routes give way to named gateways.
func (r *PodReconciler) describe(ctx context.Context, req v1alpha1.InterfaceRequest, w wiring) (v1alpha1.InterfaceStatus, error) {
	st := v1alpha1.InterfaceStatus{
		IfName: req.IfName, Driver: req.Driver, Network: req.Network,
		PortID: w.port.ID, MAC: w.port.MACAddress, VLANID: w.vlanID,
	}
	named := req.DefaultRoute && len(req.DefaultRouteGateways) > 0
	var prefixes []netip.Prefix
	for _, f := range w.port.FixedIPs {
		subnet, err := r.nets.subnet(ctx, f.SubnetID)
		if err != nil {
			return st, fmt.Errorf("subnet %s of port %s: %w", f.SubnetID, w.port.ID, err)
		}
		prefix, err := netip.ParsePrefix(subnet.CIDR)
		if err != nil {
			return st, fmt.Errorf("subnet %s has CIDR %q: %w", subnet.ID, subnet.CIDR, err)
		}
		prefixes = append(prefixes, prefix)
		st.IPs = append(st.IPs, fmt.Sprintf("%s/%d", f.IPAddress, prefix.Bits()))
		if st.Gateway == "" {
			st.Gateway = subnet.GatewayIP
		}
		for _, hr := range subnet.HostRoutes {
			if named && isDefaultDst(hr.Destination) {
				continue
			}
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
	switch {
	case named:
		for i, gw := range req.DefaultRouteGateways {
			a, err := netip.ParseAddr(gw)
			if err != nil || !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) }) {
				return st, terminal(fmt.Errorf("interface %s: default-route[%d] %s is not on a subnet of port %s (%v): the pod could not reach it",
					req.IfName, i, gw, w.port.ID, prefixes))
			}
			st.Routes = append(st.Routes, v1alpha1.Route{Dst: defaultDst(gw), Gateway: gw})
		}
		st.Gateway = req.DefaultRouteGateways[0]
	case req.DefaultRoute && st.Gateway != "":
		st.Routes = append(st.Routes, v1alpha1.Route{Dst: defaultDst(st.Gateway), Gateway: st.Gateway})
	}
	return st, nil
}

// isDefaultDst says whether dst is a default destination (0.0.0.0/0, ::/0).
func isDefaultDst(dst string) bool {
	p, err := netip.ParsePrefix(dst)
	return err == nil && p.Bits() == 0
}

func defaultDst(gw string) string {
	if a, err := netip.ParseAddr(gw); err == nil && a.Is6() {
		return "::/0"
	}
	return "0.0.0.0/0"
}
