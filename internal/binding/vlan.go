package binding

import (
	"fmt"
	"strconv"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// VLAN is the nested-vlan driver: an 802.1Q sub-interface of the VM's NIC
// (the trunk's parent port) in the pod, its tag that of the Neutron trunk
// subport that carries the pod's port.
type VLAN struct {
	kernelDriver
}

// NewVLAN returns the nested-vlan driver, keeping its checkpoints in store.
func NewVLAN(store Checkpoints, opts KernelOptions) *VLAN {
	return &VLAN{kernelDriver{kind: kernelKind{
		name: checkpoint.KindVLAN, newLink: vlanLink, owns: vlanOwns,
		clearStale: vlanClearStale, validate: vlanValidate, extra: vlanExtra,
	}, store: store, opts: opts}}
}

// vlanExtra records the tag: another pod's port may be given it once this
// one is released in the cloud, and must not be plugged while this
// attachment holds it (Set.Hold).
func vlanExtra(req linkRequest) map[string]string {
	return map[string]string{extraVLANID: strconv.Itoa(req.VLANID)}
}

// vlanLink is the one place a VLAN link is built (and the one step that
// needs 802.1Q in the kernel).
func vlanLink(parent netlink.Link, name string, req linkRequest) netlink.Link {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = parent.Attrs().Index
	la.MTU = req.MTU
	return &netlink.Vlan{LinkAttrs: la, VlanId: req.VLANID, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
}

// vlanOwns: a VLAN link, with req's tag when one is given.
func vlanOwns(link netlink.Link, req linkRequest) bool {
	v, ok := link.(*netlink.Vlan)
	return ok && (req.VLANID == 0 || v.VlanId == req.VLANID)
}

func vlanValidate(req linkRequest) error {
	if req.VLANID < 1 || req.VLANID > 4094 {
		return fmt.Errorf("VLAN ID %d of %s is outside 1..4094", req.VLANID, req.IfName)
	}
	return nil
}

// vlanStale lists the VLAN links on parent with the tag: the kernel allows
// one per tag and parent, so a leftover (a crashed ADD, a pod whose DEL
// never came) blocks the new one.
func vlanStale(links []netlink.Link, parentIndex, vlanID int) []netlink.Link {
	var out []netlink.Link
	for _, l := range links {
		if v, ok := l.(*netlink.Vlan); ok && v.ParentIndex == parentIndex && v.VlanId == vlanID {
			out = append(out, l)
		}
	}
	return out
}

func vlanClearStale(h netlinksafe.Handle, parent netlink.Link, req linkRequest) error {
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list links next to %s: %w", parent.Attrs().Name, err)
	}
	for _, l := range vlanStale(links, parent.Attrs().Index, req.VLANID) {
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("delete stale VLAN %d link %s on %s: %w", req.VLANID, l.Attrs().Name, parent.Attrs().Name, err)
		}
	}
	return nil
}
