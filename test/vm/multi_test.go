package vm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
)

// TestHotplugSeveralAndUnplugWhileBound fills every root port, checks that
// one more attach is refused, and unplugs a device while it is still bound
// to uio_pci_generic (Nova detaching an interface before the CNI DEL ran).
func TestHotplugSeveralAndUnplugWhileBound(t *testing.T) {
	g := requireGuest(t)
	vm := startVM(t, qemu.Options{Kernel: g.Kernel, Initrd: g.Initrd, RootPorts: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	macs := map[string]string{}
	for i := range 4 {
		id, mac := fmt.Sprintf("port%d", i+1), fmt.Sprintf("fa:16:3e:00:01:%02x", i+1)
		if _, err := vm.AttachNIC(ctx, qemu.NICOptions{ID: id, MAC: mac}); err != nil {
			t.Fatal(err)
		}
		macs[id] = mac
	}
	added := time.Since(start)
	if _, err := vm.AttachNIC(ctx, qemu.NICOptions{ID: "port5", MAC: "fa:16:3e:00:01:05"}); err == nil || !strings.Contains(err.Error(), "root ports") {
		t.Fatalf("fifth attach with 4 root ports: got %v, want a no free root port error", err)
	}
	pcis := map[string]string{}
	for id, mac := range macs {
		ifname := waitForMAC(ctx, t, vm, mac)
		pcis[id] = strings.TrimSpace(sh(ctx, t, vm, fmt.Sprintf("basename $(dirname $(readlink -f /sys/class/net/%s/device))", ifname)))
	}
	t.Logf("timing: 4 device_adds took %v, all 4 netdevs visible %v after the first", added.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	seen := map[string]bool{}
	for id, pci := range pcis {
		if seen[pci] {
			t.Fatalf("two devices at pci %s: %v", pci, pcis)
		}
		seen[pci] = true
		t.Logf("%s: %s", id, pci)
	}

	bind(ctx, t, vm, pcis["port2"], "uio_pci_generic")
	unplug := time.Now()
	if err := vm.DetachNIC(ctx, "port2"); err != nil {
		t.Fatalf("unplug while bound to uio_pci_generic: %v", err)
	}
	t.Logf("timing: device_del of a device bound to uio_pci_generic until DEVICE_DELETED %v", time.Since(unplug).Round(time.Millisecond))
	if res, err := vm.Agent.Run(ctx, "test -e /sys/bus/pci/devices/"+pcis["port2"]); err != nil || res.ExitCode == 0 {
		t.Fatalf("pci device %s still in the guest (%v)", pcis["port2"], err)
	}

	// The freed root port takes the next device.
	nic, err := vm.AttachNIC(ctx, qemu.NICOptions{ID: "port5", MAC: "fa:16:3e:00:01:05"})
	if err != nil {
		t.Fatal(err)
	}
	waitForMAC(ctx, t, vm, "fa:16:3e:00:01:05")
	t.Logf("port5 on the freed root port %s", nic.RootPort)
	for _, id := range []string{"port1", "port3", "port4", "port5"} {
		if err := vm.DetachNIC(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if out := sh(ctx, t, vm, "grep -l 0x1041 /sys/bus/pci/devices/*/device | wc -l"); strings.TrimSpace(out) != "0" {
		t.Fatalf("virtio-net devices left after unplugging all: %s", out)
	}
}
