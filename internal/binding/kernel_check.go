package binding

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelAttempts bounds retries of netlink dumps the kernel interrupted.
const kernelAttempts = 5

// kernelAddrList is Handle.AddrList retried on an interrupted dump
// (netlinksafe wraps only the package-level AddrList).
func kernelAddrList(h netlinksafe.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	var addrs []netlink.Addr
	var err error
	for range kernelAttempts {
		addrs, err = h.AddrList(link, family) //nolint:forbidigo // retried here
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return addrs, err
}

// check verifies for CNI CHECK that the interface in the pod is as attach
// left it: ours, up, with the MAC, MTU, addresses and routes asked for, and
// a default route exactly when asked for.
func (k kernelKind) check(ctx context.Context, req linkRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := kernelHandleAt(req.Netns)
	if err != nil {
		return fmt.Errorf("%s check %s: %w", k.name, req.IfName, err)
	}
	defer h.Close()
	link, err := h.LinkByName(req.IfName)
	if err != nil {
		return fmt.Errorf("%s check: interface %s in %s: %w", k.name, req.IfName, req.Netns, err)
	}
	if !k.owns(link, req) {
		return fmt.Errorf("%s check: %s in %s is a %s link, not the %s link asked for", k.name, req.IfName, req.Netns, link.Type(), k.name)
	}
	a := link.Attrs()
	if req.MAC != nil && !bytes.Equal(a.HardwareAddr, req.MAC) {
		return fmt.Errorf("%s check: %s in %s has MAC %s, want %s", k.name, req.IfName, req.Netns, a.HardwareAddr, req.MAC)
	}
	if req.MTU != 0 && a.MTU != req.MTU {
		return fmt.Errorf("%s check: %s in %s has MTU %d, want %d", k.name, req.IfName, req.Netns, a.MTU, req.MTU)
	}
	if a.Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s check: %s in %s is down", k.name, req.IfName, req.Netns)
	}
	addrs, err := kernelAddrList(h, link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("%s check: addresses of %s in %s: %w", k.name, req.IfName, req.Netns, err)
	}
	for _, ip := range req.IPs {
		if !slices.ContainsFunc(addrs, func(x netlink.Addr) bool { return x.IPNet.String() == ip.String() }) {
			return fmt.Errorf("%s check: %s in %s lacks address %s", k.name, req.IfName, req.Netns, ip)
		}
	}
	routes, err := h.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("%s check: routes of %s in %s: %w", k.name, req.IfName, req.Netns, err)
	}
	has := func(dst *net.IPNet, gw net.IP) bool {
		return slices.ContainsFunc(routes, func(r netlink.Route) bool {
			return kernelSameDst(r.Dst, dst) && r.Gw.Equal(gw)
		})
	}
	for _, r := range req.Routes {
		if kernelIsDefault(r.Dst) && !req.DefaultRoute {
			continue
		}
		if !has(r.Dst, r.GW) {
			return fmt.Errorf("%s check: %s in %s lacks route %v via %v", k.name, req.IfName, req.Netns, r.Dst, r.GW)
		}
	}
	// A default route learnt from a router advertisement (an IPv6 SLAAC
	// subnet) is the network's doing, not ours: it does not count.
	defaults := slices.ContainsFunc(routes, func(r netlink.Route) bool {
		return kernelIsDefault(r.Dst) && r.Protocol != unix.RTPROT_RA
	})
	switch {
	case req.DefaultRoute && !defaults:
		return fmt.Errorf("%s check: %s in %s has no default route via %s", k.name, req.IfName, req.Netns, req.Gateway)
	case !req.DefaultRoute && defaults:
		return fmt.Errorf("%s check: %s in %s has a default route it was not asked for", k.name, req.IfName, req.Netns)
	}
	return nil
}

// kernelSameDst compares route destinations, a nil one being the default
// of either family (netlink may report a default route without Dst).
func kernelSameDst(a, b *net.IPNet) bool {
	if kernelIsDefault(a) || kernelIsDefault(b) {
		fa, fb := kernelFamily(a), kernelFamily(b)
		return kernelIsDefault(a) && kernelIsDefault(b) && (fa == 0 || fb == 0 || fa == fb)
	}
	return a.String() == b.String()
}

// kernelFamily is 4 or 6 for a destination, 0 for a nil one (either).
func kernelFamily(n *net.IPNet) int {
	switch {
	case n == nil:
		return 0
	case n.IP.To4() != nil:
		return 4
	}
	return 6
}
