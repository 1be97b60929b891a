package binding

import (
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// MACVLAN is the nested-macvlan driver: a MACVLAN (bridge mode) of the VM's
// NIC in the pod, carrying the Neutron port's MAC and IPs that Neutron lets
// through as an allowed-address-pair of the VM's port.
type MACVLAN struct {
	kernelDriver
}

// NewMACVLAN returns the nested-macvlan driver, keeping its checkpoints in
// store.
func NewMACVLAN(store Checkpoints, opts KernelOptions) *MACVLAN {
	return &MACVLAN{kernelDriver{kind: kernelKind{name: checkpoint.KindMACVLAN, newLink: macvlanLink, owns: macvlanOwns},
		store: store, opts: opts}}
}

// macvlanLink is the one place a MACVLAN link is built.
func macvlanLink(parent netlink.Link, name string, req linkRequest) netlink.Link {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = parent.Attrs().Index
	la.MTU = req.MTU
	return &netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}
}

func macvlanOwns(link netlink.Link, _ linkRequest) bool {
	m, ok := link.(*netlink.Macvlan)
	return ok && m.Mode == netlink.MACVLAN_MODE_BRIDGE
}
