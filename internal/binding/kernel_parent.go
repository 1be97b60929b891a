package binding

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
)

// KernelParent returns the name of the node NIC that pod interfaces hang
// off, in the namespace at netnsPath ("" for the caller's own): override when
// given (checked to exist); else the link with mac, the MAC of the VM's
// Neutron port that the controller recorded (KuryrNode status.parentMAC),
// when one has it; else the link that holds nodeIP (the node's InternalIP).
// Links stacked on another (VLAN, MACVLAN, IPVLAN, which may carry their
// parent's MAC) are not the NIC; two links with mac are an error, not a
// guess.
func KernelParent(netnsPath, override string, mac net.HardwareAddr, nodeIP net.IP) (string, error) {
	h, err := kernelHandleAt(netnsPath)
	if err != nil {
		return "", err
	}
	defer h.Close()
	if override != "" {
		if _, err := h.LinkByName(override); err != nil {
			return "", fmt.Errorf("parent link %s (configured): %w", override, err)
		}
		return override, nil
	}
	if len(mac) > 0 {
		links, err := h.LinkList()
		if err != nil {
			return "", fmt.Errorf("list links to find the one with MAC %s: %w", mac, err)
		}
		var found []string
		for _, l := range links {
			if bytes.Equal(l.Attrs().HardwareAddr, mac) && !stacked(l) {
				found = append(found, l.Attrs().Name)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
			// The guest may show another MAC than Neutron's (a bond, a
			// renamed NIC): the node's address still marks its NIC.
		default:
			return "", fmt.Errorf("links %s all have the VM NIC's MAC %s; set --parent-interface", strings.Join(found, ", "), mac)
		}
	}
	if nodeIP == nil {
		if len(mac) > 0 {
			return "", fmt.Errorf("no link has the VM NIC's MAC %s and there is no node IP to find it by; set --parent-interface", mac)
		}
		return "", errors.New("no parent link configured and no node IP to find it by")
	}
	addrs, err := kernelAddrList(h, nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("list addresses to find the link with %s: %w", nodeIP, err)
	}
	for _, a := range addrs {
		if a.IP.Equal(nodeIP) {
			l, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("link %d holding %s: %w", a.LinkIndex, nodeIP, err)
			}
			return l.Attrs().Name, nil
		}
	}
	if len(mac) > 0 {
		return "", fmt.Errorf("no link has the VM NIC's MAC %s or holds the node IP %s", mac, nodeIP)
	}
	return "", fmt.Errorf("no link holds the node IP %s", nodeIP)
}
