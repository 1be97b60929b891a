package qemu

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// RequireEnv, when 1, turns a test's skip for lack of a built guest (or of
// another part the VM tests need) into a failure.
const RequireEnv = "KURYR_TEST_VM"

// SkipOrFail skips the test with a "SKIPPED:" line, or fails it when
// RequireEnv is 1.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg + " (" + RequireEnv + "=1 forbids skipping)")
	}
	t.Log("SKIPPED: " + msg)
	t.Skip(msg)
}

// RequireGuest returns the built guest (FindGuest), skipping the test (or
// failing it, see RequireEnv) without one or without qemu-system-x86_64.
func RequireGuest(t testing.TB) Guest {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		SkipOrFail(t, "qemu-system-x86_64 not found: run hack/vm/build-guest.sh (installs qemu-system-x86)")
	}
	g, err := FindGuest("")
	if err != nil {
		SkipOrFail(t, err.Error())
	}
	return g
}

// StartForTest boots a VM for a test (bounded by 3 minutes), logs how long
// the boot took, and closes it when the test ends, with the tail of the
// guest's console in the log when the test failed.
func StartForTest(t testing.TB, opts Options) *VM {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	vm, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start vm: %v", err)
	}
	t.Logf("guest booted, agent answering after %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest console (tail):\n%s", vm.Console(6000))
		}
		if err := vm.Close(); err != nil {
			t.Errorf("close vm: %v", err)
		}
	})
	return vm
}

// MustSh runs script in the guest and fails the test unless it exits 0;
// it returns the script's stdout.
func MustSh(ctx context.Context, t testing.TB, vm *VM, script string) string {
	t.Helper()
	res, err := vm.Agent.Run(ctx, script)
	if err != nil {
		t.Fatalf("guest %q: %v", script, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("guest %q: exit code %d\nstdout: %s\nstderr: %s", script, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res.Stdout
}
