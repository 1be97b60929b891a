package binding

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr/testr"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// linkState is what the keeper cares about of a link: up or not, its
// IPv4 addresses and the IPv4 routes through it (all tables).
type linkState struct {
	up     bool
	addrs  []string
	routes []string
}

func (s linkState) idle() bool { return !s.up && len(s.addrs) == 0 && len(s.routes) == 0 }

func readLink(t *testing.T, n ns.NetNS, name string) (st linkState) {
	t.Helper()
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		st.up = l.Attrs().Flags&net.FlagUp != 0
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range as {
			st.addrs = append(st.addrs, a.IPNet.String())
		}
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: l.Attrs().Index}, netlink.RT_FILTER_OIF)
		if err != nil {
			return err
		}
		for _, r := range rs {
			st.routes = append(st.routes, r.String())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read link %s: %v", name, err)
	}
	return st
}

func waitLink(t *testing.T, n ns.NetNS, name, what string, ok func(linkState) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := readLink(t, n, name)
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: link %s is %+v", what, name, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleKeeperTakesPoolDevicesBackDown runs the keeper on a real network
// namespace standing in for the node: its uplink ens3 holds the node's
// address; pool0 and pool1 have the MACs of pre-attached pool ports;
// other0 is no pool device; mine0 has a pool MAC but holds one of the
// node's addresses. pool0, configured (up, address, route) before the
// keeper learns the pool, is taken down and unconfigured when it does;
// pool1, configured while the keeper runs, is taken back down on the
// kernel's notifications, and again when only its address comes back.
// other0, the uplink (its MAC also listed) and mine0 are left as they are.
func TestIdleKeeperTakesPoolDevicesBackDown(t *testing.T) {
	node := netnstest.NewNS(t)
	macs := map[string]string{}
	for _, name := range []string{"ens3", "pool0", "pool1", "other0", "mine0"} {
		netnstest.AddParent(t, node, name, 1500)
	}
	if err := node.Do(func(ns.NetNS) error {
		for _, name := range []string{"ens3", "pool0", "pool1", "other0", "mine0"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			macs[name] = l.Attrs().HardwareAddr.String()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"ens3": "10.0.0.10/24", "mine0": "10.0.1.10/24", "other0": "192.168.60.2/24"} {
		netnstest.Configure(t, node, name, addr, "")
	}
	netnstest.Configure(t, node, "pool0", "192.168.50.7/24", "10.77.0.0/16")

	k := NewIdleKeeper(IdleOptions{Log: testr.New(t), Node: KernelOptions{ParentNetns: node.Path(),
		Parent: func(context.Context) (string, error) { return "ens3", nil }}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	nodeIPs := []net.IP{net.ParseIP("10.0.0.10"), net.ParseIP("10.0.1.10")}
	k.Set([]string{strings.ToUpper(macs["pool0"]), macs["pool1"], macs["ens3"], macs["mine0"]}, nodeIPs)

	waitLink(t, node, "pool0", "pool0 configured before the keeper knew it", linkState.idle)
	waitLink(t, node, "pool1", "pool1, up as it appeared", linkState.idle)

	netnstest.Configure(t, node, "pool1", "192.168.51.7/24", "")
	waitLink(t, node, "pool1", "pool1 configured while the keeper runs", linkState.idle)
	// An address alone, on the link kept down: removed too.
	if err := node.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("pool1")
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("192.168.52.7/24")
		return netlink.AddrAdd(l, a)
	}); err != nil {
		t.Fatal(err)
	}
	waitLink(t, node, "pool1", "pool1 given an address while down", linkState.idle)

	for name, addr := range map[string]string{"ens3": "10.0.0.10/24", "mine0": "10.0.1.10/24", "other0": "192.168.60.2/24"} {
		if st := readLink(t, node, name); !st.up || len(st.addrs) != 1 || st.addrs[0] != addr {
			t.Errorf("%s after the keeper ran: %+v, want up with %s only", name, st, addr)
		}
	}
}
