package daemon

import (
	"slices"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestSelectionIPsAndDefaultRoute: a pod whose networks annotation gives
// net1 two ips and a default-route gateway (the KuryrPod the controller
// writes for it, see the controller's TestNPWGSelectionAndVNFOptions) gets
// both addresses on net1 in its real namespace, its default route via the
// named gateway on net1, and none on eth0, though eth0's subnet has a
// default host route; CHECK agrees, DEL removes both links.
func TestSelectionIPsAndDefaultRoute(t *testing.T) {
	n := newNode(t)
	n.startDaemon(30 * time.Second)
	const mgmtMAC, gw = "fa:16:3e:00:00:66", "10.2.0.254"
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) {
		s.Interfaces = []v1alpha1.InterfaceRequest{
			{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s-pod"},
			{IfName: "net1", Network: "default/mgmt", Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s-mgmt",
				IPs: []string{"10.2.0.50", "10.2.0.51"}, DefaultRoute: true, DefaultRouteGateways: []string{gw}},
		}
	}
	n.statusEdit = func(st *v1alpha1.KuryrPodStatus) {
		eth0 := st.Interfaces[0]
		st.Interfaces = []v1alpha1.InterfaceStatus{eth0, {IfName: "net1", Driver: v1alpha1.DriverNestedMACVLAN, Network: "default/mgmt",
			PortID: "port-net1", MAC: mgmtMAC, IPs: []string{"10.2.0.50/24", "10.2.0.51/24"}, MTU: 1450, Gateway: gw,
			Routes: []v1alpha1.Route{{Dst: "0.0.0.0/0", Gateway: gw}}, State: eth0.State}}
	}
	n.createPod("npwg", v1alpha1.StateActive)
	r, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	must(t, err)
	var got []string
	for _, ip := range res.IPs {
		if ip.Interface != nil && *ip.Interface == 1 {
			got = append(got, ip.Address.String()+" gw "+ip.Gateway.String())
		}
	}
	if want := []string{"10.2.0.50/24 gw " + gw, "10.2.0.51/24 gw " + gw}; !slices.Equal(got, want) {
		t.Errorf("result addresses of net1 %v, want %v", got, want)
	}

	if _, _, via := n.podLink("eth0"); via != "" {
		t.Errorf("eth0 has a default route via %s; net1 asked for the pod's default route", via)
	}
	mac, addrs, via := n.podLink("net1")
	slices.Sort(addrs)
	if mac != mgmtMAC || !slices.Equal(addrs, []string{"10.2.0.50/24", "10.2.0.51/24"}) || via != gw {
		t.Errorf("net1 in the pod: MAC %s, addresses %v, default via %q; want %s, both addresses, via %s", mac, addrs, via, mgmtMAC, gw)
	}
	must(t, n.cni.CheckNetworkList(n.ctx, n.list, n.rt()))
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	for _, ifName := range []string{"eth0", "net1"} {
		if mac, _, _ := n.podLink(ifName); mac != "" {
			t.Errorf("%s still in the pod after DEL", ifName)
		}
	}
}
