package dra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// watchPCI calls notify whenever a PCI device may have come or gone, or
// its netdev (how a port's device is found, by MAC) appeared or vanished,
// until ctx ends. Two sources, because rtnetlink cannot see a device bound
// to uio or vfio:
//   - the kernel's uevents (NETLINK_KOBJECT_UEVENT) of the pci, virtio and
//     net subsystems, on a real node (root "/");
//   - inotify on <root>/sys/bus/pci/devices and <root>/sys/class/net,
//     whose entries a simulated sysfs (internal/testing/pcisim) adds and
//     removes as the kernel's would; the kernel's sysfs sends no inotify
//     events for them.
//
// It returns once both are set up.
func watchPCI(ctx context.Context, root string, notify func()) error {
	in, err := newInotify(filepath.Join(root, "sys", "bus", "pci", "devices"), filepath.Join(root, "sys", "class", "net"))
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = in.Close()
	}()
	go readLoop(in, func([]byte) { notify() })
	if filepath.Clean(root) != "/" {
		return nil
	}
	ue, err := newUevents()
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = ue.Close()
	}()
	go readLoop(ue, func(msg []byte) {
		if deviceUevent(msg) {
			notify()
		}
	})
	return nil
}

// readLoop reads f until it is closed, handing each read to handle.
func readLoop(f *os.File, handle func([]byte)) {
	buf := make([]byte, 64*1024)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		handle(buf[:n])
	}
}

// newInotify watches dirs for entries made and removed; the first must
// exist, the others are watched where they do. The descriptor is
// non-blocking, in an *os.File, so a blocked Read returns when it is closed.
func newInotify(dirs ...string) (*os.File, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	for i, dir := range dirs {
		_, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM)
		if err != nil && (i == 0 || !errors.Is(err, unix.ENOENT)) {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("watch %s: %w", dir, err)
		}
	}
	return os.NewFile(uintptr(fd), "inotify"), nil
}

// newUevents opens a socket on the kernel's uevent multicast group.
func newUevents() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "uevents"), nil
}

// deviceUevent says whether a kernel uevent
// ("ACTION@DEVPATH\0KEY=VALUE\0...") is about a PCI or virtio device coming,
// going or changing driver, or a netdev coming or going.
func deviceUevent(msg []byte) bool {
	fields := bytes.Split(msg, []byte{0})
	if len(fields) == 0 {
		return false
	}
	action, _, ok := bytes.Cut(fields[0], []byte("@"))
	if !ok {
		return false
	}
	switch string(action) {
	case "add", "remove", "bind", "unbind":
	default:
		return false
	}
	for _, f := range fields[1:] {
		switch string(f) {
		case "SUBSYSTEM=pci", "SUBSYSTEM=virtio", "SUBSYSTEM=net":
			return true
		}
	}
	return false
}
