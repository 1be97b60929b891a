package binding

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// TestDPDKRefusesDevicesTheNodeUses: a PCI device found by a port's MAC
// whose link in the node's namespace carries the node's network (an
// address, a route, a VLAN on it) is refused with ErrNodeDevice naming how,
// before anything changes; a link that does none of these (a hot-plugged
// device as the guest leaves it; here, as every link of the test, one end
// of a veth pair) is bound. The node's uplink is not named here: the
// checks find it by what it carries. (A bridge or bond member, also
// refused, and a VLAN on it are not tested: the test kernels have no
// such driver.)
func TestDPDKRefusesDevicesTheNodeUses(t *testing.T) {
	node := netnstest.NewNS(t)
	e := newDPDKEnv(t)
	ctx := testCtx(t)
	for _, name := range []string{"up0", "rt0", "vp0", "ok0"} {
		netnstest.AddParent(t, node, name, 1500)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	macs := map[string]string{}
	must(node.Do(func(ns.NetNS) error {
		link := func(name string) netlink.Link {
			l, err := netlink.LinkByName(name)
			must(err)
			macs[name] = l.Attrs().HardwareAddr.String()
			return l
		}
		addr, _ := netlink.ParseAddr("10.9.0.2/24")
		must(netlink.AddrAdd(link("up0"), addr))
		_, dst, _ := net.ParseCIDR("10.8.0.0/16")
		must(netlink.RouteAdd(&netlink.Route{LinkIndex: link("rt0").Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}))
		mla := netlink.NewLinkAttrs()
		mla.Name, mla.ParentIndex = "vp0m", link("vp0").Attrs().Index
		must(netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: mla, Mode: netlink.MACVLAN_MODE_BRIDGE}))
		link("ok0")
		return nil
	}))

	store, err := checkpoint.New(e.ckDir)
	must(err)
	sys := pci.New(e.root, pci.WithPollInterval(2*time.Millisecond), pci.WithBindTimeout(2*time.Second))
	d := NewDPDK(sys, store, DPDKOptions{DeviceTimeout: time.Second, DevInfoRoot: e.root, Node: KernelOptions{ParentNetns: node.Path()}})
	for i, c := range []struct{ link, why string }{
		{"up0", "holds 10.9.0.2/24"},
		{"rt0", "routes 10.8.0.0/16"},
		{"vp0", "carries link vp0m"},
		{"ok0", ""},
	} {
		addr := fmt.Sprintf("0000:0%d:00.0", i+1)
		must(e.sim.AddVirtioNet(addr, macs[c.link]))
		cid := fmt.Sprintf("guard%d", i)
		_, err := d.Attach(ctx, Request{ContainerID: cid, IfName: "net1", MAC: hw(t, macs[c.link])})
		if c.why == "" {
			if err != nil {
				t.Fatalf("Attach of a device the node does not use (%s): %v", c.link, err)
			}
			if drv := e.sim.Driver(addr); drv != pci.DriverUIO {
				t.Fatalf("%s's device on %q after Attach", c.link, drv)
			}
			must(d.Detach(ctx, cid, "net1"))
			continue
		}
		if !errors.Is(err, ErrNodeDevice) || !strings.Contains(err.Error(), "the node's link "+c.link+", which "+c.why) {
			t.Errorf("Attach of %s's device: %v, want ErrNodeDevice saying it %s", c.link, err, c.why)
		}
		if drv := e.sim.Driver(addr); drv != pci.DriverVirtioPCI {
			t.Errorf("%s's device on %q after the refused Attach", c.link, drv)
		}
	}
	e.requireNoCheckpoint()
}
