package binding

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func kernelCIDR(t testing.TB, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

func TestKernelValidate(t *testing.T) {
	t.Parallel()
	good := linkRequest{Netns: "/run/netns/x", Parent: "ens3", IfName: "eth0", VLANID: 100}
	vlan, macvlan := NewVLAN(nil, KernelOptions{}).kind, NewMACVLAN(nil, KernelOptions{}).kind
	if err := kernelValidate(vlan, good); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	tests := []struct {
		name string
		kind kernelKind
		edit func(r *linkRequest)
		want string
	}{
		{"no netns", macvlan, func(r *linkRequest) { r.Netns = "" }, "netns"},
		{"no parent", macvlan, func(r *linkRequest) { r.Parent = "" }, "parent"},
		{"long name", macvlan, func(r *linkRequest) { r.IfName = "abcdefghijklmnop" }, "1 to 15"},
		{"tiny mtu", macvlan, func(r *linkRequest) { r.MTU = 10 }, "MTU 10"},
		{"bad mac", macvlan, func(r *linkRequest) { r.MAC = net.HardwareAddr{1, 2} }, "MAC"},
		{"default without gateway", macvlan, func(r *linkRequest) { r.DefaultRoute = true }, "gateway"},
		{"nil address", macvlan, func(r *linkRequest) { r.IPs = []*net.IPNet{nil} }, "address"},
		{"vlan 0", vlan, func(r *linkRequest) { r.VLANID = 0 }, "VLAN ID 0"},
		{"vlan 4095", vlan, func(r *linkRequest) { r.VLANID = 4095 }, "VLAN ID 4095"},
	}
	for _, tt := range tests {
		r := good
		tt.edit(&r)
		err := kernelValidate(tt.kind, r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	// Attach refuses before touching anything (no root needed to see it).
	if _, err := NewVLAN(nil, KernelOptions{}).kind.attach(context.Background(), linkRequest{Netns: "/nonexistent", Parent: "p", IfName: "eth0"}); err == nil ||
		!strings.Contains(err.Error(), "VLAN ID 0") {
		t.Fatalf("Attach with VLAN ID 0: %v", err)
	}
}

func TestVLANLinkShape(t *testing.T) {
	t.Parallel()
	parent := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ens3", Index: 7}}
	l := vlanLink(parent, "kdtmp0", linkRequest{VLANID: 101, MTU: 1450})
	v, ok := l.(*netlink.Vlan)
	if !ok {
		t.Fatalf("vlanLink made a %T", l)
	}
	if v.Name != "kdtmp0" || v.ParentIndex != 7 || v.VlanId != 101 || v.MTU != 1450 || v.VlanProtocol != netlink.VLAN_PROTOCOL_8021Q {
		t.Fatalf("vlanLink = %+v", v)
	}
	m, ok := macvlanLink(parent, "kdtmp1", linkRequest{MTU: 1400}).(*netlink.Macvlan)
	if !ok || m.Mode != netlink.MACVLAN_MODE_BRIDGE || m.ParentIndex != 7 || m.MTU != 1400 || m.Name != "kdtmp1" {
		t.Fatalf("macvlanLink = %+v", m)
	}
}

func TestVLANOwnsAndStale(t *testing.T) {
	t.Parallel()
	mk := func(name string, parent, id int) *netlink.Vlan {
		return &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent}, VlanId: id}
	}
	links := []netlink.Link{
		mk("ens3.100", 2, 100), // stale: same parent and tag
		mk("ens4.100", 3, 100), // other parent
		mk("ens3.101", 2, 101), // other tag
		&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mv", ParentIndex: 2}},
	}
	got := vlanStale(links, 2, 100)
	if len(got) != 1 || got[0].Attrs().Name != "ens3.100" {
		t.Fatalf("vlanStale = %v", got)
	}
	if !vlanOwns(links[0], linkRequest{VLANID: 100}) || vlanOwns(links[0], linkRequest{VLANID: 101}) ||
		!vlanOwns(links[0], linkRequest{}) || vlanOwns(links[3], linkRequest{}) {
		t.Fatal("vlanOwns misjudges")
	}
	if macvlanOwns(links[0], linkRequest{}) || !macvlanOwns(&netlink.Macvlan{Mode: netlink.MACVLAN_MODE_BRIDGE}, linkRequest{}) {
		t.Fatal("macvlanOwns misjudges")
	}
}

func TestKernelRouteHelpers(t *testing.T) {
	t.Parallel()
	if !kernelIsDefault(nil) || !kernelIsDefault(kernelCIDR(t, "0.0.0.0/0")) || !kernelIsDefault(kernelCIDR(t, "::/0")) ||
		kernelIsDefault(kernelCIDR(t, "10.0.0.0/8")) {
		t.Fatal("kernelIsDefault misjudges")
	}
	if !kernelSameDst(nil, kernelCIDR(t, "0.0.0.0/0")) || !kernelSameDst(kernelCIDR(t, "::/0"), nil) {
		t.Fatal("kernelSameDst: a nil destination is the default of either family")
	}
	if !kernelSameDst(kernelCIDR(t, "0.0.0.0/0"), kernelCIDR(t, "0.0.0.0/0")) || kernelSameDst(kernelCIDR(t, "0.0.0.0/0"), kernelCIDR(t, "::/0")) ||
		!kernelSameDst(kernelCIDR(t, "10.1.0.0/16"), kernelCIDR(t, "10.1.0.0/16")) {
		t.Fatal("kernelSameDst misjudges")
	}
	if n := kernelTempName(); len(n) != 15 || !strings.HasPrefix(n, "kdtmp") || n == kernelTempName() {
		t.Fatalf("kernelTempName = %q", n)
	}
}
