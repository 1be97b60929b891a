package qemu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	vm := &VM{dir: "/tmp/kuryr-vm-x", opts: Options{
		Kernel: "/k", MemoryMiB: 2048, CPUs: 2, RootPorts: 3, VIOMMU: true,
		KernelArgs: []string{"quiet"},
		Mgmt:       &Mgmt{GuestFwd: []GuestFwd{{Guest: "10.0.2.100:6443", Host: "127.0.0.1:36443"}}},
	}}
	args := vm.args("/i")
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-machine q35,accel=tcg", "-m 2048", "-kernel /k", "-initrd /i",
		"-device pcie-root-port,id=rp3,chassis=3,slot=3,bus=pcie.0",
		"user,id=mgmt,restrict=on,guestfwd=tcp:10.0.2.100:6443-cmd:busybox nc 127.0.0.1 36443",
		"virtio-net-pci,netdev=mgmt,bus=pcie.0,mac=" + MgmtMAC,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q:\n%s", want, joined)
		}
	}
	if !slices.Contains(args, "-no-reboot") {
		t.Errorf("args lack -no-reboot (a guest panic must end QEMU):\n%s", joined)
	}
	if strings.Contains(joined, "id=rp4") {
		t.Errorf("args have a 4th root port:\n%s", joined)
	}
	iommu := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "intel-iommu") })
	serial := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "virtio-serial-pci") })
	if iommu < 0 || iommu > serial {
		t.Errorf("intel-iommu must come before the other devices:\n%s", joined)
	}
	cmdline := args[len(args)-1]
	for _, want := range []string{"console=ttyS0", "panic=-1", "softlockup_panic=1", "no_timer_check", "intel_iommu=on", "kuryr.mgmt_mac=" + MgmtMAC, "quiet"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("kernel command line %q lacks %q", cmdline, want)
		}
	}

	vm.opts.VIOMMU, vm.opts.Mgmt = false, nil
	joined = strings.Join(vm.args("/i"), " ")
	if strings.Contains(joined, "intel") || strings.Contains(joined, "mgmt") {
		t.Errorf("without VIOMMU and Mgmt: %s", joined)
	}
}

func TestStartFailsWhenQEMUExits(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "qemu")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'qemu: could not load kernel' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Start(ctx, Options{Binary: fake, Kernel: "/k", Initrd: "/i"})
	if err == nil || !strings.Contains(err.Error(), "could not load kernel") {
		t.Fatalf("got %v, want the qemu log in the error", err)
	}
	if _, err := Start(ctx, Options{Binary: fake}); err == nil {
		t.Fatal("Start without kernel and initrd succeeded")
	}
}

// TestSoftLockedUp: the kernel's soft lockup report on the console is
// what SoftLockedUp reads; other console text, or none, is not one.
func TestSoftLockedUp(t *testing.T) {
	vm := &VM{dir: t.TempDir()}
	if vm.SoftLockedUp() {
		t.Fatal("soft lockup without a console")
	}
	console := filepath.Join(vm.dir, "console.log")
	if err := os.WriteFile(console, []byte("init: guest agent on /dev/vport0p1\n[   12.3] Kernel panic - not syncing: sysrq triggered crash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if vm.SoftLockedUp() {
		t.Fatal("soft lockup for a console without one")
	}
	if err := os.WriteFile(console, []byte("init: guest agent on /dev/vport0p1\n[   44.348850] watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [containerd:151]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !vm.SoftLockedUp() {
		t.Fatal("the kernel's soft lockup report not seen")
	}
}

func TestFindGuest(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(GuestEnv, "")
	if _, err := FindGuest(cache); err == nil || !strings.Contains(err.Error(), "build-guest.sh") {
		t.Fatalf("empty cache: got %v, want a hint at build-guest.sh", err)
	}
	dir := filepath.Join(cache, "vm", "abc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("abc", filepath.Join(cache, "vm", "current")); err != nil {
		t.Fatal(err)
	}
	g, err := FindGuest(cache)
	if err != nil || g.Kernel != filepath.Join(cache, "vm", "current", "vmlinuz") {
		t.Fatalf("got %+v, %v", g, err)
	}
	t.Setenv(GuestEnv, dir)
	if g, err := FindGuest("/nonexistent"); err != nil || g.Dir != dir {
		t.Fatalf("with %s: got %+v, %v", GuestEnv, g, err)
	}
}
