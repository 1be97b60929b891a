package qemu

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// GuestEnv names a directory holding a built guest (vmlinuz, initrd.img),
// overriding the cache's "current" build.
const GuestEnv = "KURYR_VM_GUEST"

// Guest is a guest built by hack/vm/build-guest.sh.
type Guest struct {
	Dir, Kernel, Initrd string
}

// FindGuest returns the guest in $KURYR_VM_GUEST, or else the newest one in
// cacheDir/vm/current (cacheDir: $KURYR_CACHE or /var/cache/kuryr-dpdk when
// empty). The error says how to build one.
func FindGuest(cacheDir string) (Guest, error) {
	dir := os.Getenv(GuestEnv)
	if dir == "" {
		if cacheDir == "" {
			cacheDir = os.Getenv("KURYR_CACHE")
		}
		if cacheDir == "" {
			cacheDir = "/var/cache/kuryr-dpdk"
		}
		dir = filepath.Join(cacheDir, "vm", "current")
	}
	g := Guest{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	for _, f := range []string{g.Kernel, g.Initrd} {
		if _, err := os.Stat(f); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return g, fmt.Errorf("no node VM guest at %s: run hack/vm/build-guest.sh (or set %s)", dir, GuestEnv)
			}
			return g, fmt.Errorf("node VM guest %s: %w", dir, err)
		}
	}
	return g, nil
}
