package binding

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// kernelEnv is a node namespace with a parent NIC and an empty pod
// namespace, both removed when the test ends.
type kernelEnv struct {
	node, pod ns.NetNS
}

func kernelNewEnv(t *testing.T) kernelEnv {
	t.Helper()
	node := netnstest.NewNS(t)
	netnstest.AddParent(t, node, "ens3", 1500)
	return kernelEnv{node: node, pod: netnstest.NewNS(t)}
}

// kernelPodReq is the management interface of a pod: eth0 with IPv4 and
// IPv6 addresses, one extra route, the default route.
func kernelPodReq(t *testing.T, e kernelEnv) linkRequest {
	mac, _ := net.ParseMAC("fa:16:3e:11:22:33")
	return linkRequest{
		Netns: e.pod.Path(), Parent: "ens3", ParentNetns: e.node.Path(),
		IfName: "eth0", MAC: mac, MTU: 1400,
		IPs:     []*net.IPNet{kernelCIDR(t, "10.0.0.5/24"), kernelCIDR(t, "fd00:10::5/64")},
		Gateway: net.ParseIP("10.0.0.1"),
		Routes: []Route{
			{Dst: kernelCIDR(t, "192.168.0.0/16"), GW: net.ParseIP("10.0.0.254")},
			{Dst: kernelCIDR(t, "fd00:20::/64"), GW: net.ParseIP("fd00:10::1")},
		},
		DefaultRoute: true,
	}
}

// kernelLinks lists the link names in n.
func kernelLinks(t *testing.T, n ns.NetNS) []string {
	t.Helper()
	h, err := kernelHandleAt(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

// kernelRoutes lists "dst via gw" of the routes on ifName in n.
func kernelRoutes(t *testing.T, n ns.NetNS, ifName string) []string {
	t.Helper()
	h, err := kernelHandleAt(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifName)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		dst := "default"
		if !kernelIsDefault(r.Dst) {
			dst = r.Dst.String()
		}
		if r.Gw != nil {
			dst += " via " + r.Gw.String()
		}
		out = append(out, dst)
	}
	return out
}

func TestMACVLANLifecycle(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	d := NewMACVLAN(nil, KernelOptions{})
	ctx := context.Background()
	req := kernelPodReq(t, e)

	res, err := d.kind.attach(ctx, req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if res.IfName != "eth0" || res.MAC.String() != "fa:16:3e:11:22:33" || res.MTU != 1400 || res.Sandbox != e.pod.Path() {
		t.Fatalf("Attach result = %+v", res)
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("pod links = %v", got)
	}
	if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
		t.Fatalf("node links after Attach = %v (temporary link left behind?)", got)
	}
	routes := kernelRoutes(t, e.pod, "eth0")
	for _, want := range []string{"default via 10.0.0.1", "192.168.0.0/16 via 10.0.0.254", "fd00:20::/64 via fd00:10::1", "10.0.0.0/24"} {
		if !slices.Contains(routes, want) {
			t.Errorf("pod routes %v lack %q", routes, want)
		}
	}
	h, err := kernelHandleAt(e.pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := link.(*netlink.Macvlan); !ok || m.Mode != netlink.MACVLAN_MODE_BRIDGE || link.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("eth0 = %T %+v, want an up bridge-mode macvlan", link, link.Attrs())
	}

	if err := d.kind.check(ctx, req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	for name, edit := range map[string]func(r *linkRequest){
		"other MAC":      func(r *linkRequest) { r.MAC, _ = net.ParseMAC("fa:16:3e:00:00:00") },
		"other MTU":      func(r *linkRequest) { r.MTU = 1300 },
		"missing IP":     func(r *linkRequest) { r.IPs = append(r.IPs, kernelCIDR(t, "10.0.0.6/24")) },
		"missing route":  func(r *linkRequest) { r.Routes = append(r.Routes, Route{Dst: kernelCIDR(t, "172.16.0.0/12")}) },
		"no default":     func(r *linkRequest) { r.DefaultRoute = false },
		"other name":     func(r *linkRequest) { r.IfName = "net9" },
		"VLAN, not ours": nil,
	} {
		r := req
		r.IPs, r.Routes = slices.Clone(req.IPs), slices.Clone(req.Routes)
		var err error
		if edit == nil {
			err = NewVLAN(nil, KernelOptions{}).kind.check(ctx, linkRequest{Netns: r.Netns, IfName: "eth0", VLANID: 100})
		} else {
			edit(&r)
			err = d.kind.check(ctx, r)
		}
		if err == nil {
			t.Errorf("Check with %s passed", name)
		}
	}

	if err := d.kind.detach(ctx, req.Netns, "eth0"); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("pod links after Detach = %v", got)
	}
	if err := d.kind.detach(ctx, req.Netns, "eth0"); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	if err := d.kind.check(ctx, req); err == nil {
		t.Fatal("Check after Detach passed")
	}
	// The runtime removed the namespace before DEL: still a success.
	if err := d.kind.detach(ctx, filepath.Join(t.TempDir(), "gone"), "eth0"); err != nil {
		t.Fatalf("Detach with the netns gone: %v", err)
	}
	if err := d.kind.detach(ctx, "", "eth0"); err != nil {
		t.Fatalf("Detach with no netns: %v", err)
	}
	// The parent is untouched.
	if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
		t.Fatalf("node links after Detach = %v", got)
	}
}

// TestMACVLANDefaultRouteOnlyWhenAsked: an extra interface given the
// subnet's routes, a default one among them, gets no default route.
func TestMACVLANDefaultRouteOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	d := NewMACVLAN(nil, KernelOptions{})
	ctx := context.Background()
	req := linkRequest{
		Netns: e.pod.Path(), Parent: "ens3", ParentNetns: e.node.Path(), IfName: "net1",
		IPs:     []*net.IPNet{kernelCIDR(t, "10.9.0.5/24")},
		Gateway: net.ParseIP("10.9.0.1"),
		Routes: []Route{
			{Dst: kernelCIDR(t, "0.0.0.0/0"), GW: net.ParseIP("10.9.0.1")},
			{Dst: kernelCIDR(t, "10.10.0.0/16"), GW: net.ParseIP("10.9.0.1")},
		},
	}
	if _, err := d.kind.attach(ctx, req); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	routes := kernelRoutes(t, e.pod, "net1")
	if slices.ContainsFunc(routes, func(r string) bool { return strings.HasPrefix(r, "default") }) {
		t.Fatalf("net1 got a default route it was not asked for: %v", routes)
	}
	if !slices.Contains(routes, "10.10.0.0/16 via 10.9.0.1") {
		t.Fatalf("net1 routes %v lack the subnet's route", routes)
	}
	if err := d.kind.check(ctx, req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// A default route someone else adds makes Check fail, unless a router
	// advertisement put it there (proto ra).
	for _, tc := range []struct {
		proto  netlink.RouteProtocol
		passes bool
	}{{unix.RTPROT_RA, true}, {unix.RTPROT_STATIC, false}} {
		route := &netlink.Route{Dst: kernelCIDR(t, "0.0.0.0/0"), Gw: net.ParseIP("10.9.0.1"), Protocol: tc.proto}
		err := e.pod.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName("net1")
			if err != nil {
				return err
			}
			route.LinkIndex = l.Attrs().Index
			return netlink.RouteAdd(route)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.kind.check(ctx, req); (err == nil) != tc.passes {
			t.Errorf("Check with a default route of protocol %d: %v", tc.proto, err)
		}
		if err := e.pod.Do(func(ns.NetNS) error { return netlink.RouteDel(route) }); err != nil {
			t.Fatal(err)
		}
	}
	// The MAC the kernel gave it is kept when none is asked for.
	if res, err := d.kind.attach(ctx, linkRequest{Netns: e.pod.Path(), Parent: "ens3", ParentNetns: e.node.Path(), IfName: "net2"}); err != nil || len(res.MAC) != 6 {
		t.Fatalf("Attach without MAC: %+v, %v", res, err)
	}
}

// TestMACVLANRollback: a failing step leaves neither a temporary link on
// the node nor a half-made interface in the pod.
func TestMACVLANRollback(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	d := NewMACVLAN(nil, KernelOptions{})
	ctx := context.Background()
	base := kernelPodReq(t, e)
	// Each case fails at a different step; the first two after the link
	// was made, moved and renamed, so the rollback has work to do.
	for _, tc := range []struct {
		name, step string
		edit       func(r *linkRequest)
	}{
		{"conflicting IP", "add address 10.0.0.5/24", func(r *linkRequest) { r.IPs = append(r.IPs, kernelCIDR(t, "10.0.0.5/24")) }},
		{"unreachable gateway", "add route 172.16.0.0/12 via 192.0.2.1", func(r *linkRequest) {
			r.Routes = append(r.Routes, Route{Dst: kernelCIDR(t, "172.16.0.0/12"), GW: net.ParseIP("192.0.2.1")})
		}},
		{"MTU above parent's", "create link on parent ens3", func(r *linkRequest) { r.MTU = 9000 }},
		{"missing parent", "parent link ens9", func(r *linkRequest) { r.Parent = "ens9" }},
	} {
		r := base
		r.IPs, r.Routes = slices.Clone(base.IPs), slices.Clone(base.Routes)
		tc.edit(&r)
		_, err := d.kind.attach(ctx, r)
		if err == nil || !strings.Contains(err.Error(), tc.step) {
			t.Errorf("%s: Attach error %v, want one at step %q", tc.name, err, tc.step)
		}
		if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("%s: pod links after failed Attach = %v", tc.name, got)
		}
		if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
			t.Errorf("%s: node links after failed Attach = %v", tc.name, got)
		}
	}

	// A name already taken in the pod: refused, the existing link kept.
	if _, err := d.kind.attach(ctx, base); err != nil {
		t.Fatal(err)
	}
	_, err := d.kind.attach(ctx, base)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Attach of eth0: %v", err)
	}
	if err := d.kind.check(ctx, base); err != nil {
		t.Fatalf("the first eth0 was harmed: %v", err)
	}
	if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
		t.Fatalf("node links = %v", got)
	}
}

// TestMACVLANParentInCurrentNamespace: ParentNetns "" is the caller's own
// namespace, as for the daemon in the node's host namespace.
func TestMACVLANParentInCurrentNamespace(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	req := kernelPodReq(t, e)
	req.ParentNetns = ""
	err := e.node.Do(func(ns.NetNS) error {
		_, err := NewMACVLAN(nil, KernelOptions{}).kind.attach(context.Background(), req)
		return err
	})
	if err != nil {
		t.Fatalf("Attach from inside the node namespace: %v", err)
	}
	if err := NewMACVLAN(nil, KernelOptions{}).kind.check(context.Background(), req); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestKernelParentByMAC: with the MAC of the VM's Neutron port (KuryrNode
// status.parentMAC) the NIC is the link with that MAC, even when another
// link holds the node's IP, and never a link stacked on it (here a MACVLAN)
// that carries the same MAC; an unknown MAC falls back to the node's IP; two NICs with the MAC
// are refused, naming both.
func TestKernelParentByMAC(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	vmMAC, _ := net.ParseMAC("fa:16:3e:00:00:04")
	addNIC := func(name string) (netlink.Link, error) {
		la := netlink.NewLinkAttrs()
		la.Name, la.HardwareAddr = name, vmMAC
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
			return nil, fmt.Errorf("add %s: %w", name, err)
		}
		return netlink.LinkByName(name)
	}
	err := e.node.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("ens3")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: kernelCIDR(t, "10.1.0.10/24")}); err != nil {
			return err
		}
		nic, err := addNIC("ens4")
		if err != nil {
			return err
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.ParentIndex, la.HardwareAddr = "ens4m", nic.Attrs().Index, vmMAC
		return netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := KernelParent(e.node.Path(), "", vmMAC, net.ParseIP("10.1.0.10")); err != nil || got != "ens4" {
		t.Fatalf("KernelParent by MAC %s = %q, %v; want ens4 (not ens3 with the node IP, not the MACVLAN ens4m on it)", vmMAC, got, err)
	}
	other, _ := net.ParseMAC("fa:16:3e:00:00:99")
	if got, err := KernelParent(e.node.Path(), "", other, net.ParseIP("10.1.0.10")); err != nil || got != "ens3" {
		t.Fatalf("KernelParent with a MAC no link has = %q, %v; want ens3 by the node IP", got, err)
	}
	if _, err := KernelParent(e.node.Path(), "", other, nil); err == nil || !strings.Contains(err.Error(), other.String()) {
		t.Fatalf("KernelParent with a MAC no link has and no IP: %v; want an error naming the MAC", err)
	}
	if err := e.node.Do(func(ns.NetNS) error { _, err := addNIC("ens5"); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := KernelParent(e.node.Path(), "", vmMAC, net.ParseIP("10.1.0.10")); err == nil || !strings.Contains(err.Error(), "ens4, ens5") {
		t.Fatalf("KernelParent with two NICs of MAC %s: %v; want a refusal naming ens4 and ens5", vmMAC, err)
	}
}

func TestKernelParent(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	err := e.node.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("ens3")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, &netlink.Addr{IPNet: kernelCIDR(t, "10.1.0.10/24")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := KernelParent(e.node.Path(), "", nil, net.ParseIP("10.1.0.10")); err != nil || got != "ens3" {
		t.Fatalf("KernelParent by IP = %q, %v", got, err)
	}
	if got, err := KernelParent(e.node.Path(), "ens3p", nil, net.ParseIP("10.1.0.10")); err != nil || got != "ens3p" {
		t.Fatalf("KernelParent override = %q, %v", got, err)
	}
	if _, err := KernelParent(e.node.Path(), "ens9", nil, nil); err == nil {
		t.Fatal("KernelParent accepted a missing override")
	}
	if _, err := KernelParent(e.node.Path(), "", nil, net.ParseIP("10.1.0.11")); err == nil || !strings.Contains(err.Error(), "10.1.0.11") {
		t.Fatalf("KernelParent with an IP nobody holds: %v", err)
	}
	if _, err := KernelParent(e.node.Path(), "", nil, nil); err == nil {
		t.Fatal("KernelParent with neither override nor IP")
	}
	var nsErr ns.NSPathNotExistErr
	if _, err := KernelParent(filepath.Join(t.TempDir(), "none"), "", nil, net.ParseIP("10.1.0.10")); !errors.As(err, &nsErr) {
		t.Fatalf("KernelParent in a missing netns: %v", err)
	}
}
