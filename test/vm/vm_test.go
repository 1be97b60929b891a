// Package vm holds the real node VM tests: a QEMU guest (hack/vm/build-guest.sh)
// with real PCI hot-plug, a real bind of the hot-plugged virtio-net device to
// a DPDK driver, and dpdk-testpmd moving packets that the host counts.
//
// Without a built guest the tests skip loudly; with KURYR_TEST_VM=1 they fail
// instead. See docs/node-vm.md.
package vm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
)

// RequireEnv, when 1, turns a skip for lack of a built guest into a failure.
const RequireEnv = qemu.RequireEnv

func requireGuest(t *testing.T) qemu.Guest {
	t.Helper()
	return qemu.RequireGuest(t)
}

func startVM(t *testing.T, opts qemu.Options) *qemu.VM {
	t.Helper()
	return qemu.StartForTest(t, opts)
}

// sh runs script in the guest and fails the test unless it exits 0.
func sh(ctx context.Context, t *testing.T, vm *qemu.VM, script string) string {
	t.Helper()
	return qemu.MustSh(ctx, t, vm, script)
}

func TestBootExecAndExtraInitrd(t *testing.T) {
	g := requireGuest(t)
	extra := filepath.Join(t.TempDir(), "extra.cpio")
	var buf bytes.Buffer
	err := qemu.WriteCPIO(&buf, []qemu.CPIOFile{
		{Name: "usr/local/share/kuryr/hello", Mode: 0o644, Data: []byte("from the extra initramfs\n")},
		{Name: "etc/kuryr/init.d/10-hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hook-ran >/run/hook\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(extra, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	apiserver := fakeAPIServer(t)
	vm := startVM(t, qemu.Options{
		Kernel: g.Kernel, Initrd: g.Initrd, ExtraInitrd: []string{extra},
		Mgmt: &qemu.Mgmt{GuestFwd: []qemu.GuestFwd{{Guest: "10.0.2.100:6443", Host: apiserver}}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Logf("guest kernel %s", strings.TrimSpace(sh(ctx, t, vm, "uname -r")))
	res, err := vm.Agent.Run(ctx, "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "out\n" || res.Stderr != "err\n" || res.ExitCode != 3 {
		t.Fatalf("exec: got %+v, want stdout out, stderr err, exit code 3", res)
	}
	if got := sh(ctx, t, vm, "cat /usr/local/share/kuryr/hello /run/hook"); got != "from the extra initramfs\nhook-ran\n" {
		t.Fatalf("extra initramfs: got %q", got)
	}
	var rtt []time.Duration
	for range 5 {
		s := time.Now()
		sh(ctx, t, vm, "true")
		rtt = append(rtt, time.Since(s))
	}
	t.Logf("timing: agent round trip of `true`: %v", rtt)

	// The management NIC reaches the host's loopback through guestfwd only.
	got := sh(ctx, t, vm, "echo ping | nc 10.0.2.100 6443")
	if got != "pong from the host\n" {
		t.Fatalf("guestfwd to %s: got %q", apiserver, got)
	}
	// Without restrict=on, user networking would take the guest to any host
	// loopback port through 10.0.2.2: with it, the unforwarded server is out
	// of reach.
	other := fakeAPIServer(t)
	_, port, _ := net.SplitHostPort(other)
	res, err = vm.Agent.Run(ctx, "echo ping | timeout 5 nc 10.0.2.2 "+port)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Stdout, "pong") {
		t.Fatalf("restrict=on: the guest reached %s through 10.0.2.2", other)
	}
}

// fakeAPIServer stands in for the host's kube-apiserver: a loopback TCP
// server answering one line per connection.
func fakeAPIServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				b := make([]byte, 64)
				if _, err := c.Read(b); err == nil {
					fmt.Fprintln(c, "pong from the host")
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestGuestKernelPanicEndsTheVM: the guest boots with softlockup_panic=1,
// and a guest kernel panic ends QEMU (panic=-1 with -no-reboot), so a
// wedged guest ends the test's waits (Exited) instead of its timeouts; the
// panic is on the console, and the diagnostics a failed test runs in the
// guest return an error at once.
func TestGuestKernelPanicEndsTheVM(t *testing.T) {
	g := requireGuest(t)
	vm := startVM(t, qemu.Options{Kernel: g.Kernel, Initrd: g.Initrd})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := strings.TrimSpace(sh(ctx, t, vm, "cat /proc/sys/kernel/softlockup_panic")); got != "1" {
		t.Fatalf("kernel.softlockup_panic = %q, want 1", got)
	}
	// In the background, so that the agent answers before the crash.
	sh(ctx, t, vm, "(sleep 0.5; echo c >/proc/sysrq-trigger) >/dev/null 2>&1 &")
	select {
	case <-vm.Exited():
	case <-time.After(time.Minute):
		t.Fatalf("QEMU still running a minute after the guest kernel was made to panic; console tail:\n%s", vm.Console(3000))
	}
	if c := vm.Console(1 << 20); !strings.Contains(c, "Kernel panic") {
		t.Fatalf("the console does not show the panic; tail:\n%s", vm.Console(3000))
	}
	if vm.SoftLockedUp() {
		t.Fatal("SoftLockedUp says a soft lockup for a panic by sysrq")
	}
	start := time.Now()
	if _, err := vm.RunForDiagnostics("true"); err == nil {
		t.Fatal("RunForDiagnostics answered on a VM that has exited")
	} else if d := time.Since(start); d > time.Second {
		t.Fatalf("RunForDiagnostics took %v on an exited VM", d)
	}
}
