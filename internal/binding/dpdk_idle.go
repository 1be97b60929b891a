package binding

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// IdleKeeper keeps the node's pre-attached DPDK devices that wait on their
// kernel driver (the pool's devices in state Attaching or Ready) down and
// unconfigured: link down, no address, no route. The node OS may try to
// configure a NIC that appears (a DHCP client, NetworkManager, netplan,
// cloud-init): the device would then carry traffic of the node's, and the
// DPDK binding refuses a device that holds addresses or routes
// (refuseNodeDevice). The keeper reacts to the kernel's link, address and
// route notifications in the node's namespace; it does not poll.
//
// It never touches a link the node uses: the uplink, a link enslaved to
// another or carrying a VLAN/MACVLAN, or one holding one of the node's own
// addresses or routing from one (nodeView). A device bound to a DPDK
// driver has no link and is not seen at all.
type IdleKeeper struct {
	opts IdleOptions

	mu      sync.Mutex
	macs    map[string]bool // normalized
	nodeIPs []net.IP
	// refused remembers, per MAC, why a device was left alone, so that a
	// device the node uses is logged once and not at every notification.
	refused map[string]string
	kick    chan struct{}
}

// IdleOptions configure an IdleKeeper.
type IdleOptions struct {
	// Node says where the node's NIC is (its namespace; its uplink).
	Node KernelOptions
	// Log receives what the keeper changed and what it left alone.
	Log logr.Logger
}

// NewIdleKeeper returns a keeper with no devices to keep; Set gives them.
func NewIdleKeeper(opts IdleOptions) *IdleKeeper {
	return &IdleKeeper{opts: opts, macs: map[string]bool{}, refused: map[string]string{}, kick: make(chan struct{}, 1)}
}

// Set replaces the devices to keep idle (by MAC) and the node's own
// addresses, and makes Run look at the node's links again. A MAC that does
// not parse is logged and skipped.
func (k *IdleKeeper) Set(macs []string, nodeIPs []net.IP) {
	set := make(map[string]bool, len(macs))
	for _, m := range macs {
		n, err := pci.NormalizeMAC(m)
		if err != nil {
			k.opts.Log.Error(err, "Ignoring a pool device with a bad MAC", "mac", m)
			continue
		}
		set[n] = true
	}
	k.mu.Lock()
	k.macs, k.nodeIPs = set, append([]net.IP(nil), nodeIPs...)
	k.mu.Unlock()
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Run keeps the devices idle until ctx ends. It subscribes to the node
// namespace's link, address and route notifications first, then looks at
// every link, so no change between the two is missed; afterwards it looks
// again at each notification about a pool device's link (or a Set). A
// subscription that breaks is made again after a second.
func (k *IdleKeeper) Run(ctx context.Context) error {
	for {
		err := k.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		k.opts.Log.Error(err, "Watching the node's links for pool devices; subscribing again")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (k *IdleKeeper) watch(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	links, addrs, routes := make(chan netlink.LinkUpdate, 64), make(chan netlink.AddrUpdate, 64), make(chan netlink.RouteUpdate, 64)
	failed := make(chan error, 3)
	onErr := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	if err := k.subscribe(links, addrs, routes, done, onErr); err != nil {
		return err
	}
	pool, err := k.pass(ctx)
	if err != nil {
		return err
	}
	for {
		again := false
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case <-k.kick:
			again = true
		case u, ok := <-links:
			if !ok {
				return errors.New("link notifications ended")
			}
			again = pool[int(u.Index)] || k.wanted(u.Attrs().HardwareAddr)
		case u, ok := <-addrs:
			if !ok {
				return errors.New("address notifications ended")
			}
			again = u.NewAddr && pool[u.LinkIndex]
		case u, ok := <-routes:
			if !ok {
				return errors.New("route notifications ended")
			}
			again = u.Type == unix.RTM_NEWROUTE && pool[u.LinkIndex]
		}
		if again {
			if pool, err = k.pass(ctx); err != nil {
				return err
			}
		}
	}
}

// subscribe opens the three subscriptions in the node's namespace.
func (k *IdleKeeper) subscribe(links chan netlink.LinkUpdate, addrs chan netlink.AddrUpdate, routes chan netlink.RouteUpdate,
	done chan struct{}, onErr func(error)) error {
	h := netns.None()
	if p := k.opts.Node.ParentNetns; p != "" {
		var err error
		if h, err = netns.GetFromPath(p); err != nil {
			return fmt.Errorf("open netns %s: %w", p, err)
		}
		defer func() { _ = h.Close() }()
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: &h, ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe to link notifications: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: &h, ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe to address notifications: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{Namespace: &h, ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe to route notifications: %w", err)
	}
	return nil
}

func (k *IdleKeeper) wanted(mac net.HardwareAddr) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.macs[strings.ToLower(mac.String())]
}

// pass looks at every link of the node's namespace once and takes each
// pool device the node does not use down and unconfigured. It returns the
// link indexes of the pool devices found.
func (k *IdleKeeper) pass(ctx context.Context) (map[int]bool, error) {
	k.mu.Lock()
	macs, nodeIPs := k.macs, k.nodeIPs
	k.mu.Unlock()
	pool := map[int]bool{}
	if len(macs) == 0 {
		return pool, nil
	}
	h, err := kernelHandleAt(k.opts.Node.ParentNetns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list the node's links: %w", err)
	}
	addrs, err := kernelAddrList(h, nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the node's addresses: %w", err)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list the node's routes: %w", err)
	}
	view := nodeView{links: links, addrs: addrs, routes: routes, nodeIP: func(ip net.IP) bool {
		for _, n := range nodeIPs {
			if n.Equal(ip) {
				return true
			}
		}
		return false
	}}
	if p := k.opts.Node.Parent; p != nil {
		if view.parent, err = p(ctx); err != nil {
			// The node's addresses still mark its uplink.
			k.opts.Log.V(1).Info("Keeping pool devices idle without the node's uplink name", "reason", err.Error())
		}
	}
	for _, l := range links {
		a := l.Attrs()
		mac := strings.ToLower(a.HardwareAddr.String())
		if !macs[mac] {
			continue
		}
		pool[a.Index] = true
		if why := view.use(a); why != "" {
			k.leftAlone(mac, a.Name, why)
			continue
		}
		k.mu.Lock()
		delete(k.refused, mac)
		k.mu.Unlock()
		if err := k.quiesce(h, l, addrs); err != nil {
			k.opts.Log.Error(err, "Could not keep a pre-attached DPDK device idle", "link", a.Name, "mac", mac)
		}
	}
	return pool, nil
}

func (k *IdleKeeper) leftAlone(mac, name, why string) {
	k.mu.Lock()
	seen := k.refused[mac] == why
	k.refused[mac] = why
	k.mu.Unlock()
	if !seen {
		k.opts.Log.Info("Leaving a pool device alone: the node uses it", "link", name, "mac", mac, "why", why)
	}
}

// quiesce sets link l down and removes its addresses and the routes
// through it.
func (k *IdleKeeper) quiesce(h netlinksafe.Handle, l netlink.Link, addrs []netlink.Addr) error {
	a := l.Attrs()
	var errs []error
	if a.Flags&net.FlagUp != 0 {
		if err := h.LinkSetDown(l); err != nil {
			errs = append(errs, fmt.Errorf("set %s down: %w", a.Name, err))
		} else {
			k.opts.Log.Info("Took a pre-attached DPDK device down: something on the node set it up", "link", a.Name, "mac", a.HardwareAddr.String())
		}
	}
	for _, ad := range addrs {
		if ad.LinkIndex != a.Index {
			continue
		}
		// Setting the link down already dropped IPv6 addresses.
		if err := h.AddrDel(l, &ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", ad.IPNet, a.Name, err))
		} else if err == nil {
			k.opts.Log.Info("Removed an address from a pre-attached DPDK device", "link", a.Name, "address", ad.IPNet.String())
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, LinkIndex: a.Index},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list the routes through %s: %w", a.Name, err))...)
	}
	for _, r := range routes {
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove route %s from %s: %w", r, a.Name, err))
		} else if err == nil {
			k.opts.Log.Info("Removed a route from a pre-attached DPDK device", "link", a.Name, "route", r.String())
		}
	}
	return errors.Join(errs...)
}
