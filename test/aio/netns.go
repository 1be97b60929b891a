package aio

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces live, as `ip netns` keeps them,
// so that `ip netns exec NAME …` works on the ones the environment makes.
const netnsDir = "/run/netns"

// createNetNS makes a network namespace bind-mounted at netnsDir/name and
// returns its path. The calling goroutine's thread is left in its original
// namespace.
func createNetNS(name string) (string, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", netnsDir, err)
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", fmt.Errorf("create netns file %s: %w", path, err)
	}
	_ = f.Close()

	errc := make(chan error, 1)
	go func() {
		// A fresh thread for the unshare, returned to the original
		// namespace before it is unlocked, so no thread is ever lost.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare netns %s: %w", name, err)
			return
		}
		mountErr := unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the new namespace: let it die with
			// the goroutine rather than be reused.
			errc <- errors.Join(fmt.Errorf("return from netns %s: %w", name, err), mountErr)
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			errc <- fmt.Errorf("bind-mount netns %s: %w", path, mountErr)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return "", err
	}
	if err := inNS(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		_ = removeNetNS(path)
		return "", fmt.Errorf("bring up lo in %s: %w", path, err)
	}
	return path, nil
}

// removeNetNS unmounts and removes a namespace made by createNetNS. The links
// inside it go with it (a veth end takes its peer along). A missing one is
// not an error.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// inNS runs f with the calling thread in the namespace at path.
func inNS(path string, f func() error) error {
	n, err := ns.GetNS(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer n.Close()
	return n.Do(func(ns.NetNS) error { return f() })
}

// KernelHasVLAN reports whether the kernel can make 802.1Q VLAN links, by
// trying one on a veth in a scratch namespace named scratch.
func KernelHasVLAN(scratch string) (bool, error) {
	path, err := createNetNS(scratch)
	if err != nil {
		return false, err
	}
	defer func() { _ = removeNetNS(path) }()
	var has bool
	err = inNS(path, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = "probe0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "probe1"}); err != nil {
			return fmt.Errorf("add veth probe0: %w", err)
		}
		parent, err := netlink.LinkByName("probe0")
		if err != nil {
			return err
		}
		vla := netlink.NewLinkAttrs()
		vla.Name = "probe0.100"
		vla.ParentIndex = parent.Attrs().Index
		has = netlink.LinkAdd(&netlink.Vlan{LinkAttrs: vla, VlanId: 100}) == nil
		return nil
	})
	return has, err
}

// Link is one link of a network namespace as Links reads it.
type Link struct {
	// Kind is the link's type as netlink names it (vlan, macvlan, veth, …).
	Kind string
	MAC  string
	// Addrs are its IPv4 addresses in CIDR form (10.0.0.5/24).
	Addrs []string
}

// Links lists the links of the network namespace at path by name (a pod's,
// a node's), for tests to compare with what the KuryrPod records.
func Links(path string) (map[string]Link, error) {
	out := map[string]Link{}
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			link := Link{Kind: l.Type(), MAC: l.Attrs().HardwareAddr.String()}
			for _, a := range addrs {
				link.Addrs = append(link.Addrs, a.IPNet.String())
			}
			out[l.Attrs().Name] = link
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the links in %s: %w", path, err)
	}
	return out, nil
}

// UDPReaches sends datagrams from the network namespace at from to ip, an
// address of the namespace at to, and returns nil once one arrives there
// within timeout: traffic between two pods' interfaces, through the nodes'
// NICs and the fabric when the pods are on different nodes.
func UDPReaches(from, to string, ip net.IP, timeout time.Duration) error {
	var conn net.PacketConn
	err := ns.WithNetNSPath(to, func(ns.NetNS) error {
		var err error
		conn, err = net.ListenPacket("udp4", net.JoinHostPort(ip.String(), "0"))
		return err
	})
	if err != nil {
		return fmt.Errorf("listen on %s in %s: %w", ip, to, err)
	}
	defer conn.Close()
	addr := conn.LocalAddr().String()
	payload := []byte("kuryr-aio " + randomHex(4))
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		// One datagram a round: the first may wait for ARP.
		err := ns.WithNetNSPath(from, func(ns.NetNS) error {
			c, err := net.Dial("udp4", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(payload)
			return err
		})
		if err != nil {
			return fmt.Errorf("send from %s to %s: %w", from, addr, err)
		}
		round := time.Now().Add(500 * time.Millisecond)
		if round.After(deadline) {
			round = deadline
		}
		_ = conn.SetReadDeadline(round)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // this round's wait is over
			}
			if string(buf[:n]) == string(payload) {
				return nil
			}
		}
	}
	return fmt.Errorf("nothing sent from %s reached %s in %s within %s", from, addr, to, timeout)
}
