package binding

import (
	"context"

	"github.com/vishvananda/netlink"
)

// MACVLAN is the nested-macvlan driver: a MACVLAN (bridge mode) of the VM's
// NIC in the pod, carrying the Neutron port's MAC and IPs that Neutron lets
// through as an allowed-address-pair of the VM's port.
type MACVLAN struct {
	kind kernelKind
}

// NewMACVLAN returns the nested-macvlan driver.
func NewMACVLAN() *MACVLAN {
	return &MACVLAN{kind: kernelKind{name: "macvlan", newLink: macvlanLink, owns: macvlanOwns}}
}

// macvlanLink is the one place a MACVLAN link is built.
func macvlanLink(parent netlink.Link, name string, req KernelRequest) netlink.Link {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = parent.Attrs().Index
	la.MTU = req.MTU
	return &netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}
}

func macvlanOwns(link netlink.Link, _ KernelRequest) bool {
	m, ok := link.(*netlink.Macvlan)
	return ok && m.Mode == netlink.MACVLAN_MODE_BRIDGE
}

// Attach creates the interface in the pod (see KernelRequest); on error it
// leaves nothing behind.
func (d *MACVLAN) Attach(ctx context.Context, req KernelRequest) (KernelResult, error) {
	return d.kind.attach(ctx, req)
}

// Check verifies the interface is still as Attach made it.
func (d *MACVLAN) Check(ctx context.Context, req KernelRequest) error {
	return d.kind.check(ctx, req)
}

// Detach removes the interface; nothing there, or the netns gone, is a
// success.
func (d *MACVLAN) Detach(ctx context.Context, netns, ifName string) error {
	return d.kind.detach(ctx, netns, ifName)
}
