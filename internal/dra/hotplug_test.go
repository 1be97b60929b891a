package dra

import (
	"context"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// TestWatchPCIKernelUevents: on the real kernel (root "/"), the watch hears
// the kernel's uevents: a netdev made in a throwaway network namespace (the
// kernel sends its uevent to that namespace's listeners) wakes it, as a
// virtio netdev coming back after a rebind does on a node.
func TestWatchPCIKernelUevents(t *testing.T) {
	netnstest.RequireRoot(t)
	n := netnstest.NewNS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan struct{}, 1)
	notify := func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	}
	must(t, n.Do(func(ns.NetNS) error { return watchPCI(ctx, "/", notify) }))
	time.Sleep(50 * time.Millisecond)
	select {
	case <-woke: // an event of the namespace before ours: drain it
	default:
	}
	must(t, n.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dra-ue0"}, PeerName: "dra-ue1"})
	}))
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up within 5s of a netdev's add uevent")
	}
}
