package binding

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkRequest asks for one kernel interface (VLAN or MACVLAN) in a pod:
// the link-level part of a Request, with the parent resolved.
type linkRequest struct {
	// Netns is the pod's network namespace path (CNI_NETNS).
	Netns string
	// Parent is the name of the node NIC the interface hangs off.
	Parent string
	// ParentNetns is the namespace Parent lives in; "" is the caller's own
	// (the node's host namespace for the daemon).
	ParentNetns string

	// IfName is the name in the pod (eth0, net1, ...).
	IfName string
	// MAC is the Neutron port's MAC; nil keeps the kernel's random one.
	MAC net.HardwareAddr
	// MTU of the interface; 0 keeps the parent's.
	MTU int
	// IPs, Gateway, Routes, DefaultRoute: see Request.
	IPs          []*net.IPNet
	Gateway      net.IP
	Routes       []Route
	DefaultRoute bool
	// VLANID is the 802.1Q tag (nested-vlan only, 1..4094).
	VLANID int
}

// linkResult is the interface as created.
type linkResult struct {
	IfName  string
	MAC     net.HardwareAddr
	MTU     int
	Sandbox string // the pod netns path
}

// kernelKind is what differs between VLAN and MACVLAN: how the link is
// built, how it is recognised, what stale state is cleared first.
type kernelKind struct {
	name string
	// newLink builds (does not add) the link on parent under name.
	newLink func(parent netlink.Link, name string, req linkRequest) netlink.Link
	// owns says whether link is one this kind would have made for req.
	owns func(link netlink.Link, req linkRequest) bool
	// clearStale removes leftovers on the parent that would make the
	// creation fail (may be nil).
	clearStale func(h netlinksafe.Handle, parent netlink.Link, req linkRequest) error
	// validate checks kind-specific request fields (may be nil).
	validate func(req linkRequest) error
	// extra is what the checkpoint keeps of req in Extra (may be nil).
	extra func(req linkRequest) map[string]string
}

// kernelHandles opens netlink handles in the pod and parent namespaces.
type kernelHandles struct {
	podNS  ns.NetNS
	pod    netlinksafe.Handle
	parent netlinksafe.Handle
}

func (h *kernelHandles) close() {
	h.pod.Close()
	h.parent.Close()
	if h.podNS != nil {
		_ = h.podNS.Close()
	}
}

func kernelOpen(req linkRequest) (*kernelHandles, error) {
	h := &kernelHandles{}
	podNS, err := ns.GetNS(req.Netns)
	if err != nil {
		return nil, fmt.Errorf("open pod netns %s: %w", req.Netns, err)
	}
	h.podNS = podNS
	if h.pod, err = netlinksafe.NewHandleAt(netns.NsHandle(int(podNS.Fd())), unix.NETLINK_ROUTE); err != nil {
		h.close()
		return nil, fmt.Errorf("netlink in pod netns %s: %w", req.Netns, err)
	}
	if h.parent, err = kernelHandleAt(req.ParentNetns); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// kernelHandleAt returns a netlink handle in the namespace at path, or in
// the caller's own when path is "". Handles speak NETLINK_ROUTE only: asking
// for every family (xfrm, netfilter too) fails with "protocol not supported"
// on kernels where those are modules not loaded, as in Debian's cloud kernel.
func kernelHandleAt(path string) (netlinksafe.Handle, error) {
	if path == "" {
		h, err := netlinksafe.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return netlinksafe.Handle{}, fmt.Errorf("netlink in the current netns: %w", err)
		}
		return h, nil
	}
	n, err := ns.GetNS(path)
	if err != nil {
		return netlinksafe.Handle{}, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer func() { _ = n.Close() }()
	h, err := netlinksafe.NewHandleAt(netns.NsHandle(int(n.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		return netlinksafe.Handle{}, fmt.Errorf("netlink in netns %s: %w", path, err)
	}
	return h, nil
}

// kernelTempName is a random name for a link between creation and rename.
func kernelTempName() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "kdtmp" + hex.EncodeToString(b) // 15 bytes, the kernel's limit
}

// kernelIsDefault says whether dst is a default destination.
func kernelIsDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// kernelDefaultDst is the default destination in gw's family.
func kernelDefaultDst(gw net.IP) *net.IPNet {
	if gw.To4() != nil {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// kernelValidate checks a request before anything is touched.
func kernelValidate(k kernelKind, req linkRequest) error {
	switch {
	case req.Netns == "":
		return errors.New("no pod netns")
	case req.Parent == "":
		return errors.New("no parent link")
	case req.IfName == "" || len(req.IfName) > 15:
		return fmt.Errorf("interface name %q must be 1 to 15 bytes", req.IfName)
	case req.MTU != 0 && req.MTU < 68:
		return fmt.Errorf("MTU %d of %s is below 68", req.MTU, req.IfName)
	case req.MAC != nil && len(req.MAC) != 6:
		return fmt.Errorf("MAC %s of %s is not an Ethernet address", req.MAC, req.IfName)
	case req.DefaultRoute && req.Gateway == nil:
		return fmt.Errorf("default route asked for %s without a gateway", req.IfName)
	}
	for _, ip := range req.IPs {
		if ip == nil || ip.IP == nil || ip.Mask == nil {
			return fmt.Errorf("an address of %s has no IP or prefix", req.IfName)
		}
	}
	if k.validate != nil {
		return k.validate(req)
	}
	return nil
}

// attach creates the link under a temporary name next to the parent, moves
// it into the pod, renames it, sets MAC and MTU, brings it up and adds
// addresses and routes. On any error everything done so far is undone.
func (k kernelKind) attach(ctx context.Context, req linkRequest) (_ linkResult, err error) {
	if verr := kernelValidate(k, req); verr != nil {
		return linkResult{}, fmt.Errorf("%s attach %s in %s: %w", k.name, req.IfName, req.Netns, verr)
	}
	if err = ctx.Err(); err != nil {
		return linkResult{}, err
	}
	h, err := kernelOpen(req)
	if err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: %w", k.name, req.IfName, err)
	}
	defer h.close()

	if _, lerr := h.pod.LinkByName(req.IfName); lerr == nil {
		return linkResult{}, fmt.Errorf("%s attach: an interface %s already exists in pod netns %s", k.name, req.IfName, req.Netns)
	}
	parent, err := h.parent.LinkByName(req.Parent)
	if err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: parent link %s: %w", k.name, req.IfName, req.Parent, err)
	}
	if k.clearStale != nil {
		if err = k.clearStale(h.parent, parent, req); err != nil {
			return linkResult{}, fmt.Errorf("%s attach %s: %w", k.name, req.IfName, err)
		}
	}

	tmp := kernelTempName()
	if err = h.parent.LinkAdd(k.newLink(parent, tmp, req)); err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: create link on parent %s: %w", k.name, req.IfName, req.Parent, err)
	}
	// From here on the link exists: where it is and under which name, so
	// that the rollback finds it.
	where, name := h.parent, tmp
	defer func() {
		if err == nil {
			return
		}
		if rbErr := kernelDelLink(where, name); rbErr != nil {
			err = errors.Join(err, fmt.Errorf("roll back link %s: %w", name, rbErr))
		}
	}()

	link, err := h.parent.LinkByName(tmp)
	if err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: find new link %s: %w", k.name, req.IfName, tmp, err)
	}
	if err = ctx.Err(); err != nil {
		return linkResult{}, err
	}
	if err = h.parent.LinkSetNsFd(link, int(h.podNS.Fd())); err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: move link %s to %s: %w", k.name, req.IfName, tmp, req.Netns, err)
	}
	where = h.pod
	if link, err = h.pod.LinkByName(tmp); err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: find link %s in %s: %w", k.name, req.IfName, tmp, req.Netns, err)
	}
	if err = h.pod.LinkSetName(link, req.IfName); err != nil {
		return linkResult{}, fmt.Errorf("%s attach: rename %s to %s in %s: %w", k.name, tmp, req.IfName, req.Netns, err)
	}
	name = req.IfName
	if err = kernelConfigure(h.pod, req); err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s in %s: %w", k.name, req.IfName, req.Netns, err)
	}
	if link, err = h.pod.LinkByName(req.IfName); err != nil {
		return linkResult{}, fmt.Errorf("%s attach %s: read back: %w", k.name, req.IfName, err)
	}
	return linkResult{IfName: req.IfName, MAC: link.Attrs().HardwareAddr, MTU: link.Attrs().MTU, Sandbox: req.Netns}, nil
}

// kernelConfigure sets MAC and MTU, brings the link up, adds addresses and
// routes, in the pod namespace.
func kernelConfigure(h netlinksafe.Handle, req linkRequest) error {
	link, err := h.LinkByName(req.IfName)
	if err != nil {
		return err
	}
	if req.MTU != 0 && link.Attrs().MTU != req.MTU {
		if err := h.LinkSetMTU(link, req.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", req.MTU, err)
		}
	}
	if req.MAC != nil {
		if err := h.LinkSetHardwareAddr(link, req.MAC); err != nil {
			return fmt.Errorf("set MAC %s: %w", req.MAC, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	for _, ip := range req.IPs {
		addr := &netlink.Addr{IPNet: ip}
		if ip.IP.To4() == nil {
			// Neutron already guarantees the address is unique; without
			// DAD it is usable at once, and so are routes through it.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address %s: %w", ip, err)
		}
	}
	idx := link.Attrs().Index
	haveDefault := map[bool]bool{} // by "is IPv4"
	for _, r := range req.Routes {
		if kernelIsDefault(r.Dst) {
			if !req.DefaultRoute {
				continue
			}
			haveDefault[r.Dst == nil || r.Dst.IP.To4() != nil] = true
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: r.Dst, Gw: r.GW}); err != nil {
			return fmt.Errorf("add route %v via %v: %w", r.Dst, r.GW, err)
		}
	}
	if req.DefaultRoute && !haveDefault[req.Gateway.To4() != nil] {
		dst := kernelDefaultDst(req.Gateway)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: dst, Gw: req.Gateway}); err != nil {
			return fmt.Errorf("add default route via %s: %w", req.Gateway, err)
		}
	}
	return nil
}

// kernelDelLink deletes the link called name, if there is one.
func kernelDelLink(h netlinksafe.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		return err
	}
	return h.LinkDel(link)
}

// detach removes the interface from the pod. A missing netns, a missing
// link, or a link of another kind under that name (not ours) is no error.
func (k kernelKind) detach(ctx context.Context, netnsPath, ifName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if netnsPath == "" {
		return nil
	}
	gone, err := NetnsGone(netnsPath)
	if err != nil {
		return fmt.Errorf("%s detach %s: %w", k.name, ifName, err)
	}
	if gone {
		return nil // the runtime removed the namespace, and our link with it
	}
	podNS, err := ns.GetNS(netnsPath)
	if err != nil {
		return fmt.Errorf("%s detach %s: open pod netns %s: %w", k.name, ifName, netnsPath, err)
	}
	defer func() { _ = podNS.Close() }()
	h, err := netlinksafe.NewHandleAt(netns.NsHandle(int(podNS.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("%s detach %s: netlink in %s: %w", k.name, ifName, netnsPath, err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifName)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		return fmt.Errorf("%s detach %s in %s: %w", k.name, ifName, netnsPath, err)
	}
	if !k.owns(link, linkRequest{}) {
		return nil
	}
	if err := h.LinkDel(link); err != nil {
		return fmt.Errorf("%s detach: delete %s in %s: %w", k.name, ifName, netnsPath, err)
	}
	return nil
}
