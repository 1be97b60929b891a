package binding

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// vlanEnvVM is the variable under which the same test run also runs the
// QEMU node VM tests (test/vm), TestKernelDriversOnGuestKernel among them.
const vlanEnvVM = "KURYR_TEST_VM"

// vlanSkipNo8021Q handles a kernel that cannot make VLAN links at all
// (err from creating one): the test skips, loudly, when not strict. Under
// KURYR_TEST_STRICT=1 it fails, unless the run also runs the QEMU node VM
// tests (KURYR_TEST_VM=1), where test/vm's TestKernelDriversOnGuestKernel
// runs this very test on the guest kernel (which has 802.1Q) with
// KURYR_TEST_STRICT=1 and requires it to pass.
func vlanSkipNo8021Q(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return
	}
	msg := fmt.Sprintf("this kernel lacks 802.1Q VLAN support (CONFIG_VLAN_8021Q; creating a vlan link says %q). "+
		"Everything but the link creation is tested here by TestVLANFlowWithStandInLink; the real-kernel proof of "+
		"nested-vlan is this test run in the QEMU node VM's guest kernel (test/vm, TestKernelDriversOnGuestKernel).", err)
	switch {
	case os.Getenv(netnstest.StrictEnv) != "1":
		t.Skip("SKIPPED: " + msg)
	case os.Getenv(vlanEnvVM) == "1":
		t.Skip("SKIPPED here, run in the guest by this same run (" + vlanEnvVM + "=1): " + msg)
	default:
		t.Fatal(msg + " " + netnstest.StrictEnv + "=1 forbids skipping it, and without " + vlanEnvVM + "=1 this run does not run it in the guest.")
	}
}

// TestVLANRealKernel runs nested-vlan for real where the kernel has 802.1Q:
// a stale link with the same tag is cleared, ADD, CHECK, DEL, DEL.
func TestVLANRealKernel(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	ctx := context.Background()

	// A leftover sub-interface with tag 100 on the parent, as a crashed ADD
	// or a lost DEL leaves it.
	err := e.node.Do(func(ns.NetNS) error {
		parent, err := netlink.LinkByName("ens3")
		if err != nil {
			return err
		}
		return netlink.LinkAdd(vlanLink(parent, "stale100", linkRequest{VLANID: 100}))
	})
	vlanSkipNo8021Q(t, err)
	if err != nil {
		t.Fatalf("create the stale VLAN link: %v", err)
	}

	d := NewVLAN(nil, KernelOptions{})
	req := kernelPodReq(t, e)
	req.VLANID = 100
	if _, err := d.kind.attach(ctx, req); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
		t.Fatalf("node links = %v, want the stale link gone and no temporary one", got)
	}
	if err := d.kind.check(ctx, req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	other := req
	other.VLANID = 101
	if err := d.kind.check(ctx, other); err == nil || !strings.Contains(err.Error(), "not the vlan link") {
		t.Fatalf("Check with another tag: %v", err)
	}
	if err := d.kind.detach(ctx, req.Netns, req.IfName); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("pod links after Detach = %v", got)
	}
	if err := d.kind.detach(ctx, req.Netns, req.IfName); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
}

// TestVLANFlowWithStandInLink runs the VLAN driver end to end in network
// namespaces with only its link constructor (and the matching ownership
// test) swapped for MACVLAN's, because this host's kernel cannot make VLAN
// links: validation, stale-link clearing over the parent's real link list,
// create-move-rename, configuration, CHECK, DEL, DEL and rollback are the
// VLAN driver's own code. vlanLink itself is checked by TestVLANLinkShape
// and, on a kernel with 802.1Q, by TestVLANRealKernel.
func TestVLANFlowWithStandInLink(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	ctx := context.Background()
	d := NewVLAN(nil, KernelOptions{})
	d.kind.newLink = macvlanLink
	d.kind.owns = macvlanOwns

	req := kernelPodReq(t, e)
	req.VLANID = 0
	if _, err := d.kind.attach(ctx, req); err == nil || !strings.Contains(err.Error(), "VLAN ID 0") {
		t.Fatalf("Attach without a tag: %v", err)
	}
	req.VLANID = 200
	res, err := d.kind.attach(ctx, req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if res.MAC.String() != "fa:16:3e:11:22:33" || res.MTU != 1400 {
		t.Fatalf("Attach result = %+v", res)
	}
	if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
		t.Fatalf("node links = %v", got)
	}
	if err := d.kind.check(ctx, req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := d.kind.detach(ctx, req.Netns, req.IfName); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if err := d.kind.detach(ctx, req.Netns, req.IfName); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("pod links after Detach = %v", got)
	}

	// Rollback through the VLAN driver too.
	bad := req
	bad.IPs = append(slices.Clone(req.IPs), req.IPs[0])
	if _, err := d.kind.attach(ctx, bad); err == nil {
		t.Fatal("Attach with a conflicting IP succeeded")
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("pod links after failed Attach = %v", got)
	}
	if got := kernelLinks(t, e.node); !slices.Equal(got, []string{"ens3", "ens3p", "lo"}) {
		t.Fatalf("node links after failed Attach = %v", got)
	}

	// A link of another kind under the name is not ours: Detach leaves it.
	mac := NewMACVLAN(nil, KernelOptions{})
	if _, err := mac.kind.attach(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := NewVLAN(nil, KernelOptions{}).kind.detach(ctx, req.Netns, req.IfName); err != nil {
		t.Fatalf("VLAN Detach of a macvlan: %v", err)
	}
	if err := mac.kind.check(ctx, req); err != nil {
		t.Fatalf("VLAN Detach removed a link that was not a VLAN: %v", err)
	}
}
