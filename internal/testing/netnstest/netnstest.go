// Package netnstest gives root-only tests throwaway network namespaces and
// parent links, removed when the test ends (the shape of
// containernetworking/plugins' pkg/testutils).
package netnstest

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
)

// StrictEnv, when set to 1, turns a skip for lack of root into a failure. CI
// sets it so that root-only tests can never silently skip there.
const StrictEnv = "KURYR_TEST_STRICT"

// RequireRoot skips the test, loudly, when not running as root, or fails it
// when KURYR_TEST_STRICT=1.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "SKIPPED: this test needs root (network namespaces, netlink); run `make test` as root"
	if os.Getenv(StrictEnv) == "1" {
		t.Fatal(msg + " (" + StrictEnv + "=1 forbids skipping)")
	}
	t.Skip(msg)
}

// NewNS creates a network namespace that is closed and unmounted when the
// test ends.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		if err := testutils.UnmountNS(n); err != nil {
			t.Errorf("remove network namespace %s: %v", n.Path(), err)
		}
	})
	return n
}

// AddParent creates an up link named name inside n, to stand in for a VM's
// NIC, and returns its index. It is one end of a veth pair whose peer
// (name+"p") stays in n too: the host kernels this project is tested on
// (Firecracker builds) have no dummy driver, and a veth end serves as a parent
// for MACVLAN the same way.
func AddParent(t testing.TB, n ns.NetNS, name string, mtu int) int {
	t.Helper()
	var index int
	err := n.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.MTU = mtu
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
			return fmt.Errorf("add parent link %s (veth): %w", name, err)
		}
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find dummy link %s: %w", name, err)
		}
		index = l.Attrs().Index
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatalf("in %s: %v", n.Path(), err)
	}
	return index
}

// Configure does to link name in n what a DHCP client or a network manager
// would: sets it up and gives it addr (CIDR) and, when dst is not empty, a
// link-scope route to dst through it.
func Configure(t testing.TB, n ns.NetNS, name, addr, dst string) {
	t.Helper()
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", addr, name, err)
		}
		if dst == "" {
			return nil
		}
		_, d, err := net.ParseCIDR(dst)
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: d, Scope: netlink.SCOPE_LINK})
	})
	if err != nil {
		t.Fatalf("configure %s in %s: %v", name, n.Path(), err)
	}
}
