package binding

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// KernelParent returns the name of the node NIC that pod interfaces hang
// off, in the namespace at netnsPath ("" for the caller's own): override when
// given (checked to exist), else the link that holds nodeIP (the node's
// InternalIP).
func KernelParent(netnsPath, override string, nodeIP net.IP) (string, error) {
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
	if nodeIP == nil {
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
	return "", fmt.Errorf("no link holds the node IP %s", nodeIP)
}
