package daemon

import (
	"errors"
	"fmt"
	"net"
	"slices"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// plugged is one interface as the pod got it: what was asked for (spec and
// status of the KuryrPod), the binding request made of it, and what the
// binding driver answered.
type plugged struct {
	ir  v1alpha1.InterfaceRequest
	st  v1alpha1.InterfaceStatus
	req binding.Request
	res binding.Result
}

// bindingRequest is the one place a KuryrPod interface becomes a binding
// request: the status's strings are parsed here, once; a value the cloud
// gave that does not parse is an internal error naming the interface. netns
// is the pod's network namespace (CNI_NETNS, or the checkpoint's for
// CHECK).
func bindingRequest(req *cniapi.Request, netns string, ir v1alpha1.InterfaceRequest, st v1alpha1.InterfaceStatus) (binding.Request, error) {
	br := binding.Request{
		ContainerID: req.ContainerID, IfName: ir.IfName, Netns: netns, Network: ir.Network, PortID: st.PortID,
		DefaultRoute: ir.DefaultRoute, VLANID: st.VLANID,
		DPDKDriver: ir.DPDKDriver,
	}
	if ir.CNIArgs != nil {
		br.CNIArgs = ir.CNIArgs.Raw
	}
	if req.NetConf != nil {
		if br.Network == "" {
			br.Network = req.NetConf.Name
		}
		br.DeviceInfoFile = req.NetConf.RuntimeConfig.DeviceInfoFile
		br.CNINetwork = req.NetConf.Name
	}
	var err error
	if br.MTU, err = mtu(req, ir, st); err != nil {
		return br, err
	}
	if br.MAC, err = net.ParseMAC(st.MAC); err != nil {
		return br, cniErr(cniapi.CodeInternal, "interface %s: the cloud gave MAC %q: %v", ir.IfName, st.MAC, err)
	}
	if br.Gateway, err = optionalIP(st.Gateway); err != nil {
		return br, cniErr(cniapi.CodeInternal, "interface %s: gateway %q: %v", ir.IfName, st.Gateway, err)
	}
	for _, c := range st.IPs {
		ip, n, err := net.ParseCIDR(c)
		if err != nil {
			return br, cniErr(cniapi.CodeInternal, "interface %s: address %q: %v", ir.IfName, c, err)
		}
		n.IP = ip
		br.IPs = append(br.IPs, n)
	}
	for _, r := range st.Routes {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return br, cniErr(cniapi.CodeInternal, "interface %s: route %q: %v", ir.IfName, r.Dst, err)
		}
		gw, err := optionalIP(r.Gateway)
		if err != nil {
			return br, cniErr(cniapi.CodeInternal, "interface %s: gateway %q of route %q: %v", ir.IfName, r.Gateway, r.Dst, err)
		}
		br.Routes = append(br.Routes, binding.Route{Dst: dst, GW: gw})
	}
	return br, nil
}

// mtu is the interface's MTU: the network's mtu (the
// NetworkAttachmentDefinition's, in the KuryrPod spec; else the mtu of the
// call's own configuration when the call is for this interface) when it
// is set and not above the Neutron network's MTU (the status), else the
// Neutron network's. Above it is a bad configuration: the cloud would drop
// what the pod sends.
func mtu(req *cniapi.Request, ir v1alpha1.InterfaceRequest, st v1alpha1.InterfaceStatus) (int, error) {
	want, from := ir.MTU, "the network's mtu"
	if want == 0 && req.NetConf != nil && req.IfName == ir.IfName {
		want, from = req.NetConf.MTU, "the configuration's mtu"
	}
	switch {
	case want == 0:
		return st.MTU, nil
	case st.MTU != 0 && want > st.MTU:
		return 0, cniErr(cniapi.CodeBadConfig, "interface %s: %s %d is above the MTU %d of its Neutron network (port %s)",
			ir.IfName, from, want, st.MTU, st.PortID)
	}
	return want, nil
}

// optionalIP parses s, which may be empty (none).
func optionalIP(s string) (net.IP, error) {
	if s == "" {
		return nil, nil
	}
	if ip := net.ParseIP(s); ip != nil {
		return ip, nil
	}
	return nil, errors.New("not an IP address")
}

// cniResult is the one place binding requests and results become the CNI
// result: every interface (pciID for DPDK devices), every address (a DPDK
// device's too: the application configures itself from them), routes and
// DNS.
func cniResult(netns string, got []plugged) *current.Result {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for i, p := range got {
		idx := i
		res.Interfaces = append(res.Interfaces, &current.Interface{
			Name: p.req.IfName, Mac: p.req.MAC.String(), Mtu: p.req.MTU, Sandbox: netns, PciID: p.res.PCIAddress,
		})
		for _, n := range p.req.IPs {
			cfg := &current.IPConfig{Interface: &idx, Address: *n}
			if gw := p.req.Gateway; gw != nil && (gw.To4() == nil) == (n.IP.To4() == nil) {
				cfg.Gateway = gw
			}
			res.IPs = append(res.IPs, cfg)
		}
		for _, r := range p.req.Routes {
			res.Routes = append(res.Routes, &cnitypes.Route{Dst: *r.Dst, GW: r.GW})
		}
		if dns := p.st.DNS; dns != nil && len(res.DNS.Nameservers) == 0 {
			res.DNS = cnitypes.DNS{Nameservers: dns.Nameservers, Domain: dns.Domain, Search: dns.Search}
		}
	}
	return res
}

// chained is the result of an ADD given a prevResult (a plugin earlier in
// the chain): CNI 1.1 has a plugin pass it through, modified with its own
// work. prev's interfaces, addresses and routes come first, unchanged, then
// ours, whose addresses' interface indexes move past prev's interfaces;
// prev's DNS stays when it has any.
func chained(prev, ours *current.Result) *current.Result {
	if prev == nil {
		return ours
	}
	out := &current.Result{
		CNIVersion: ours.CNIVersion,
		Interfaces: append(slices.Clone(prev.Interfaces), ours.Interfaces...),
		IPs:        slices.Clone(prev.IPs),
		Routes:     append(slices.Clone(prev.Routes), ours.Routes...),
		DNS:        prev.DNS,
	}
	for _, ip := range ours.IPs {
		c := *ip
		if ip.Interface != nil {
			idx := *ip.Interface + len(prev.Interfaces)
			c.Interface = &idx
		}
		out.IPs = append(out.IPs, &c)
	}
	if len(out.DNS.Nameservers) == 0 && len(out.DNS.Search) == 0 && out.DNS.Domain == "" {
		out.DNS = ours.DNS
	}
	return out
}

// expectPrev adds to a CHECK's binding request what the prevResult says
// the interface of r has (CNI 1.1: CHECK consults prevResult): the
// interface must be listed there (in the call's netns), with the MAC and
// PCI address plugged, and every address prevResult gives it is expected
// in the pod too (the driver's Check looks at the live namespace).
func expectPrev(br *binding.Request, prev *current.Result, netns, pciAddress string) error {
	idx := slices.IndexFunc(prev.Interfaces, func(i *current.Interface) bool {
		return i.Name == br.IfName && (i.Sandbox == "" || i.Sandbox == netns)
	})
	if idx < 0 {
		return fmt.Errorf("prevResult lists no interface %s in %s, which kuryr-cni plugged", br.IfName, netns)
	}
	in := prev.Interfaces[idx]
	if in.Mac != "" && br.MAC != nil && !equalMAC(in.Mac, br.MAC) {
		return fmt.Errorf("prevResult gives interface %s MAC %s, the pod's port has %s", br.IfName, in.Mac, br.MAC)
	}
	if in.PciID != "" && in.PciID != pciAddress { // results before 1.1.0 carry no pciID
		return fmt.Errorf("prevResult gives interface %s PCI device %q, the checkpoint %q", br.IfName, in.PciID, pciAddress)
	}
	for _, ip := range prev.IPs {
		if ip.Interface == nil || *ip.Interface != idx {
			continue
		}
		if !slices.ContainsFunc(br.IPs, func(n *net.IPNet) bool { return n.String() == ip.Address.String() }) {
			a := ip.Address
			br.IPs = append(br.IPs, &a)
		}
	}
	return nil
}

func equalMAC(s string, mac net.HardwareAddr) bool {
	m, err := net.ParseMAC(s)
	return err == nil && m.String() == mac.String()
}
