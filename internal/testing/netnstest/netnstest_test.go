package netnstest_test

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// TestNamespaceAndParent proves the root-only test plumbing works on this
// kernel: a namespace is made, a parent link and a MACVLAN on it live in the
// namespace and not in the host, and the namespace is gone after cleanup.
func TestNamespaceAndParent(t *testing.T) {
	var path string
	t.Run("inside", func(t *testing.T) {
		n := netnstest.NewNS(t)
		path = n.Path()
		idx := netnstest.AddParent(t, n, "ens3", 1450)

		err := n.Do(func(ns.NetNS) error {
			la := netlink.NewLinkAttrs()
			la.Name = "mv0"
			la.ParentIndex = idx
			return netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE})
		})
		if err != nil {
			t.Fatalf("add macvlan in namespace: %v", err)
		}
		err = n.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName("mv0")
			if err != nil {
				return err
			}
			if _, ok := l.(*netlink.Macvlan); !ok || l.Attrs().MTU != 1450 {
				t.Errorf("mv0 is %T with MTU %d, want a MACVLAN inheriting MTU 1450", l, l.Attrs().MTU)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("read macvlan back: %v", err)
		}
		if _, err := netlink.LinkByName("mv0"); err == nil {
			t.Errorf("mv0 leaked into the host namespace")
		}
	})
	if path == "" {
		return // skipped: not root
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after the test (stat: %v)", path, err)
	}
}
