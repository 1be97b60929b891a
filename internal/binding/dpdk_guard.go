package binding

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// ErrNodeDevice means the device found by a port's MAC carries the node's
// own network: it is never bound to a DPDK driver.
var ErrNodeDevice = errors.New("the device carries the node's own network")

// refuseNodeDevice returns an error wrapping ErrNodeDevice when the PCI
// device at addr, found by mac, is one the node itself uses. A link in the
// node's network namespace is the device's when it has one of the device's
// netdev names (sysfs) or its MAC; such a link must not be the node's
// uplink (KernelOptions.Parent), be enslaved to another link (a bridge, a
// bond), have another link stacked on it (VLAN, MACVLAN), hold an address
// other than an IPv6 link-local one, or be the output of a route other than
// link-local and multicast ones. A hot-plugged port's device, as Nova and
// the guest kernel leave it, is none of these.
//
// This is what stops a pod whose port has the node's MAC (Neutron checks
// MAC uniqueness per network only) from getting the node's NIC: until the
// hot-plugged twin appears, the node's NIC is the only device with that
// MAC.
func (d *DPDK) refuseNodeDevice(ctx context.Context, addr, mac string) error {
	netdevs, err := d.sys.Netdevs(addr)
	if err != nil {
		return err
	}
	var parent string
	if d.opts.Node.Parent != nil {
		// Not knowing the uplink's name leaves the other checks, which
		// catch an uplink found by the node's address anyway: a node
		// serving only DPDK interfaces need not resolve its NIC.
		var perr error
		if parent, perr = d.opts.Node.Parent(ctx); perr != nil {
			logr.FromContextOrDiscard(ctx).V(1).Info("Checking a DPDK device without the node's uplink name", "pci", addr, "reason", perr.Error())
		}
	}
	h, err := kernelHandleAt(d.opts.Node.ParentNetns)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list the node's links: %w", err)
	}
	addrs, err := kernelAddrList(h, nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list the node's addresses: %w", err)
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list the node's routes: %w", err)
	}
	view := nodeView{parent: parent, links: links, addrs: addrs, routes: routes}
	for _, l := range links {
		a := l.Attrs()
		if !slices.ContainsFunc(netdevs, func(n pci.Netdev) bool { return n.Name == a.Name }) &&
			!strings.EqualFold(a.HardwareAddr.String(), mac) {
			continue
		}
		if why := view.use(a); why != "" {
			return fmt.Errorf("PCI device %s with MAC %s is the node's link %s, which %s: %w", addr, mac, a.Name, why, ErrNodeDevice)
		}
	}
	return nil
}

// nodeView is the node's network namespace as read at one moment: its
// uplink's name, links, addresses and routes.
type nodeView struct {
	parent string
	links  []netlink.Link
	addrs  []netlink.Addr
	routes []netlink.Route
	// nodeIP says which addresses are the node's own. Nil: every address
	// but an IPv6 link-local one is, and every route but link-local and
	// multicast ones is the node's (a device about to be bound carries
	// none). Set: only those addresses, and the routes whose preferred
	// source is one of them (the idle keeper, which takes back what a DHCP
	// client put on a pool device, must not mistake that for the node's).
	nodeIP func(net.IP) bool
}

// use says how the node uses link a, "" when it does not.
func (v nodeView) use(a *netlink.LinkAttrs) string {
	if a.Name == v.parent {
		return "is the node's uplink"
	}
	if a.MasterIndex != 0 {
		return fmt.Sprintf("is enslaved to link %d", a.MasterIndex)
	}
	for _, l := range v.links {
		if stackedOn(l, a.Index) {
			return fmt.Sprintf("carries link %s", l.Attrs().Name)
		}
	}
	for _, ad := range v.addrs {
		if ad.LinkIndex == a.Index && ad.IPNet != nil && v.nodeAddr(ad.IP) {
			return "holds " + ad.IPNet.String()
		}
	}
	for _, r := range v.routes {
		if r.LinkIndex == a.Index && v.nodeRoute(r) {
			dst := "default"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			return "routes " + dst
		}
	}
	return ""
}

func (v nodeView) nodeAddr(ip net.IP) bool {
	if v.nodeIP == nil {
		return !ip.IsLinkLocalUnicast()
	}
	return v.nodeIP(ip)
}

func (v nodeView) nodeRoute(r netlink.Route) bool {
	if v.nodeIP == nil {
		return !localRoute(r.Dst)
	}
	return r.Src != nil && v.nodeIP(r.Src)
}

// stackedOn says whether l is a link made on top of the link with index
// parent in the same namespace (a VLAN, MACVLAN or IPVLAN: what pods'
// kernel interfaces are made of). A veth's peer index is not one: it
// names the other end.
func stackedOn(l netlink.Link, parent int) bool {
	a := l.Attrs()
	if a.ParentIndex != parent || a.Index == parent || a.NetNsID >= 0 {
		return false
	}
	return stacked(l)
}

// stacked says whether l is of a kind made on top of another link (a
// VLAN, MACVLAN or IPVLAN), never a NIC itself.
func stacked(l netlink.Link) bool {
	switch l.Type() {
	case "vlan", "macvlan", "macvtap", "ipvlan", "ipvtap":
		return true
	}
	return false
}

// localRoute: the routes the kernel adds to any link that is up (IPv6
// link-local and multicast).
func localRoute(dst *net.IPNet) bool {
	return dst != nil && dst.IP.To4() == nil && (dst.IP.IsLinkLocalUnicast() || dst.IP.IsMulticast())
}

// ErrDeviceMismatch means the device at a checkpoint's PCI address is not
// as the checkpoint says: giving it "back" would take it from whoever has
// it now.
var ErrDeviceMismatch = errors.New("the device is not as its checkpoint says")

// asRecorded returns an error wrapping ErrDeviceMismatch unless the device
// at rec's address may still be rec's: no newer checkpoint names the same
// address (a newer record was made after the device at that address was
// seen with its own MAC on a kernel driver: the device of the older one
// was replaced), and the device is on the recorded target driver, on no
// driver (a bind cut short), or on its original driver with its netdev
// carrying the recorded MAC (a rebind already done).
func (d *DPDK) asRecorded(rec checkpoint.Record) error {
	recs, err := d.store.List()
	if err != nil {
		return err
	}
	for _, o := range recs {
		if o.Kind != checkpoint.KindDPDK || o.Key() == rec.Key() || o.PCIAddress != rec.PCIAddress {
			continue
		}
		if !o.Created.Before(rec.Created) {
			return fmt.Errorf("PCI device %s is also in the checkpoint of %s, created %s, not before this one's (%s): %w",
				rec.PCIAddress, o.Key(), o.Created.Format(time.RFC3339Nano), rec.Created.Format(time.RFC3339Nano), ErrDeviceMismatch)
		}
	}
	cur, err := d.sys.Driver(rec.PCIAddress)
	if err != nil {
		return err
	}
	switch cur {
	case rec.TargetDriver, "":
		return nil
	case rec.OriginalDriver:
		nds, err := d.sys.Netdevs(rec.PCIAddress)
		if err != nil {
			return err
		}
		if len(nds) == 0 || slices.ContainsFunc(nds, func(n pci.Netdev) bool { return strings.EqualFold(n.MAC, rec.MAC) }) {
			return nil
		}
		return fmt.Errorf("PCI device %s is on %s with MAC %s, the checkpoint says MAC %s: %w",
			rec.PCIAddress, cur, nds[0].MAC, rec.MAC, ErrDeviceMismatch)
	}
	return fmt.Errorf("PCI device %s is bound to %q, the checkpoint says %s (or %s, its original driver): %w",
		rec.PCIAddress, cur, rec.TargetDriver, rec.OriginalDriver, ErrDeviceMismatch)
}
