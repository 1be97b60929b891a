package daemon

import (
	"errors"
	"net"

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
		MTU: st.MTU, DefaultRoute: ir.DefaultRoute, VLANID: st.VLANID,
		DPDKDriver: ir.DPDKDriver,
	}
	if req.NetConf != nil {
		if br.Network == "" {
			br.Network = req.NetConf.Name
		}
		br.DeviceInfoFile = req.NetConf.RuntimeConfig.DeviceInfoFile
	}
	var err error
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
