package aio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A real node's containerd, kubelet and kuryr-daemon share one mount
// namespace of their own, as the programs of one VM share its file system:
// containerd and the kubelet hard-code paths (/run/containerd/s for shim
// sockets, /var/lib/kubelet/device-plugins, /var/lib/cni for CNI results)
// that two nodes on one host would otherwise share. The namespace is kept
// alive by a bind mount of its nsfs file; programs enter it with nsenter
// (setns into a mount namespace is refused to a multi-threaded Go process).

// bindMount is one directory (or file) of a node bind-mounted over a path.
// A Shared one propagates the mounts made under it to the bind mounts of it
// that containers get with mount propagation HostToContainer (rslave).
type bindMount struct {
	Src, Dst string
	Shared   bool
}

// mountNSHolder makes dir a private bind mount of itself: a mount
// namespace's file can be bind-mounted only where mounts do not propagate.
// It returns the teardown.
func mountNSHolder(dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("bind-mount %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return nil, fmt.Errorf("make %s a private mount: %w", dir, err)
	}
	return func() error {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
		return nil
	}, nil
}

// createMountNS makes a mount namespace held at file (inside a directory
// prepared by mountNSHolder) that receives the host's later mounts (slave)
// and holds binds, whose targets are created on the host when missing (as
// empty directories or files, left there: a node in another environment may
// be using them as mount points). On error nothing of it is left.
func createMountNS(file string, binds []bindMount) (err error) {
	f, err := os.OpenFile(file, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create mount namespace file %s: %w", file, err)
	}
	_ = f.Close()
	if out, err := exec.Command("unshare", "--mount="+file, "--propagation", "slave", "true").CombinedOutput(); err != nil {
		_ = os.Remove(file)
		return fmt.Errorf("unshare a mount namespace at %s: %w: %s", file, err, out)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, removeMountNS(file))
		}
	}()
	for _, b := range binds {
		if err := ensureMountPoint(b.Src, b.Dst); err != nil {
			return err
		}
		if out, err := inMountNS(file, "mount", "--bind", b.Src, b.Dst).CombinedOutput(); err != nil {
			return fmt.Errorf("bind %s over %s in mount namespace %s: %w: %s", b.Src, b.Dst, file, err, out)
		}
		if !b.Shared {
			continue
		}
		if out, err := inMountNS(file, "mount", "--make-shared", b.Dst).CombinedOutput(); err != nil {
			return fmt.Errorf("make %s shared in mount namespace %s: %w: %s", b.Dst, file, err, out)
		}
	}
	return nil
}

// ensureMountPoint makes dst the same kind (directory or file) as src when
// it does not exist.
func ensureMountPoint(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	if st.IsDir() {
		return os.MkdirAll(dst, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// inMountNS is a command that runs name with args in the mount namespace
// held at file (and otherwise in the caller's namespaces).
func inMountNS(file, name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--mount=" + file, "--", name}, args...)...)
}

// removeMountNS drops the namespace's holder; the namespace and every mount
// in it go when its last process has exited. A missing one is not an error.
func removeMountNS(file string) error {
	if err := unix.Unmount(file, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount mount namespace %s: %w", file, err)
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", file, err)
	}
	return nil
}
