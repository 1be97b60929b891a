package vm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestKernelDriversOnGuestKernel runs the nested-vlan and nested-macvlan
// binding tests (internal/binding, real network namespaces) inside the
// guest: the host kernel here has no 802.1Q, the node VM's kernel does, so
// this is where the VLAN driver gets its real-kernel proof. The tests must
// pass there, not skip.
func TestKernelDriversOnGuestKernel(t *testing.T) {
	g := requireGuest(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "binding.test")
	if err := testenv.GoTestBuild(bin, "../../internal/binding"); err != nil {
		t.Fatal(err)
	}
	f, err := qemu.HostFile("usr/local/bin/binding.test", bin)
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "extra.cpio")
	if err := qemu.WriteCPIOFile(extra, []qemu.CPIOFile{f}); err != nil {
		t.Fatal(err)
	}
	vm := startVM(t, qemu.Options{Kernel: g.Kernel, Initrd: g.Initrd, ExtraInitrd: []string{extra}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := vm.Agent.Run(ctx, "modprobe veth && modprobe macvlan && modprobe 8021q && mkdir -p /var/run/netns /tmp && cd /tmp && "+
		"KURYR_TEST_STRICT=1 /usr/local/bin/binding.test -test.v -test.count=1 -test.run 'VLAN|MACVLAN|KernelParent' 2>&1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binding tests in the guest (%v):\n%s", time.Since(start).Round(time.Millisecond), res.Stdout)
	if res.ExitCode != 0 {
		t.Fatalf("binding tests failed in the guest (exit %d)", res.ExitCode)
	}
	for _, want := range []string{"--- PASS: TestVLANRealKernel", "--- PASS: TestMACVLANLifecycle"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("guest output lacks %q: the test did not run to the end there", want)
		}
	}
	if strings.Contains(res.Stdout, "--- SKIP") {
		t.Errorf("a binding test skipped on the guest kernel")
	}
}
