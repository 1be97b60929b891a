package binding

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The Network Plumbing WG Device Information Specification
// (github.com/k8snetworkplumbingwg/device-info-spec), version 1.1.0: how a
// CNI plugin tells the pod which device it got.
const (
	DeviceInfoVersion = "1.1.0"
	DeviceInfoTypePCI = "pci"
	// DeviceInfoCNIDir is the spec's directory for CNI device-info files,
	// relative to the root (spec section 4.2).
	DeviceInfoCNIDir = "var/run/k8s.cni.cncf.io/devinfo/cni"
	// DeviceInfoDPDir is the spec's directory for device plugins' files
	// (section 4.1), where the DRA driver writes its own.
	DeviceInfoDPDir = "var/run/k8s.cni.cncf.io/devinfo/dp"
)

// DeviceInfo is a device-info file (spec section 3). Only the PCI type is
// written by this project.
type DeviceInfo struct {
	Type    string         `json:"type"`
	Version string         `json:"version"`
	PCI     *PCIDeviceInfo `json:"pci,omitempty"`
}

// PCIDeviceInfo is the "pci" map (spec section 3.1.3).
type PCIDeviceInfo struct {
	PCIAddress string `json:"pci-address"`
}

// DeviceInfoPath is where, in primary mode (no CNIDeviceInfoFile from the
// runtime), the device-info file of one attachment goes: the spec's CNI
// directory under root and a name unique per attachment, built as Multus
// builds its own ("<network>-<containerID>_<ifname>", "/" replaced by "-"),
// so consumers that know Multus' names find ours.
func DeviceInfoPath(root, network, containerID, ifName string) string {
	name := strings.ReplaceAll(fmt.Sprintf("%s-%s_%s", network, containerID, ifName), "/", "-")
	return filepath.Join(root, DeviceInfoCNIDir, name)
}

// ErrDeviceInfoPath means a device-info file path is not a file directly
// in the node's device-info directory (DeviceInfoDir). The path comes from
// the runtime's configuration, which under Multus is the
// NetworkAttachmentDefinition's: its author must not be able to make the
// daemon, which runs as root, write or delete any other file.
var ErrDeviceInfoPath = errors.New("not a file in the device-info directory")

// DeviceInfoDir is the directory under root that every device-info file
// the daemon writes or removes is in: the spec's CNI directory, where
// Multus puts the CNIDeviceInfoFile it passes to a delegate.
func DeviceInfoDir(root string) string { return filepath.Join(root, DeviceInfoCNIDir) }

// deviceInfoName returns the name of the file path within dir, or an error
// wrapping ErrDeviceInfoPath when path is not a file directly in dir.
// Paths are compared as written (both clean): the directory is the
// operator's, the name the configuration's.
func deviceInfoName(dir, path string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("device-info file %q: %w (no device-info directory configured)", path, ErrDeviceInfoPath)
	}
	name := filepath.Base(path)
	if filepath.Clean(path) != path || filepath.Dir(path) != filepath.Clean(dir) || name == "." || name == ".." || name == "/" {
		return "", fmt.Errorf("device-info file %q: %w %s", path, ErrDeviceInfoPath, dir)
	}
	return name, nil
}

// openDeviceInfoDir opens dir, creating it when create is set (the spec
// requires that). dir itself is the operator's and may hold symlinks (/var/run
// is one on most hosts); every file below it is opened relative to the
// returned descriptor without following a symlink.
func openDeviceInfoDir(dir string, create bool) (*os.File, error) {
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create device-info directory %s: %w", dir, err)
		}
	}
	d, err := os.OpenFile(dir, unix.O_DIRECTORY|os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open device-info directory: %w", err)
	}
	return d, nil
}

// WriteDeviceInfo writes the device-info file path, which must be directly
// in dir, for a PCI device, replacing it atomically if it exists (a retried
// ADD). It writes a new file (O_EXCL, O_NOFOLLOW) and renames it over
// the name: neither step follows a symlink, and a symlink at the name is
// replaced, not written through.
func WriteDeviceInfo(dir, path, pciAddress string) error {
	name, err := deviceInfoName(dir, path)
	if err != nil {
		return err
	}
	data, err := json.Marshal(DeviceInfo{
		Type:    DeviceInfoTypePCI,
		Version: DeviceInfoVersion,
		PCI:     &PCIDeviceInfo{PCIAddress: pciAddress},
	})
	if err != nil {
		return fmt.Errorf("encode device-info for %s: %w", pciAddress, err)
	}
	d, err := openDeviceInfoDir(dir, true)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	dfd := int(d.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("device-info file %q: %w %s (it is there and is not a regular file)", path, ErrDeviceInfoPath, dir)
	}
	var tmp string
	var fd int
	for i := 0; ; i++ {
		tmp = fmt.Sprintf(".devinfo-%d-%d", os.Getpid(), rand.Uint64())
		fd, err = unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o444)
		if !errors.Is(err, unix.EEXIST) || i == 10 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write device-info %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write device-info %s: %w", path, err)
	}
	return nil
}

// ReadDeviceInfo reads the device-info file path, which must be directly
// in dir and not a symlink.
func ReadDeviceInfo(dir, path string) (DeviceInfo, error) {
	name, err := deviceInfoName(dir, path)
	if err != nil {
		return DeviceInfo{}, err
	}
	d, err := openDeviceInfoDir(dir, false)
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("read device-info: %w", err)
	}
	defer func() { _ = d.Close() }()
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("read device-info %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return DeviceInfo{}, fmt.Errorf("read device-info %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDeviceInfoLen+1))
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("read device-info %s: %w", path, err)
	}
	if len(data) > maxDeviceInfoLen {
		return DeviceInfo{}, fmt.Errorf("read device-info %s: longer than %d bytes", path, maxDeviceInfoLen)
	}
	return ParseDeviceInfo(path, data)
}

// maxDeviceInfoLen bounds a device-info file read back (ours are ~80 bytes).
const maxDeviceInfoLen = 64 << 10

// ParseDeviceInfo decodes a device-info file's content; path names it in
// errors.
func ParseDeviceInfo(path string, data []byte) (DeviceInfo, error) {
	var di DeviceInfo
	if err := json.Unmarshal(data, &di); err != nil {
		return DeviceInfo{}, fmt.Errorf("parse device-info %s: %w", path, err)
	}
	return di, nil
}

// RemoveDeviceInfo deletes the device-info file path, which must be
// directly in dir; a missing file, or a missing directory, is fine. The
// name is unlinked relative to the directory: a symlink there is removed
// itself, its target is never touched.
func RemoveDeviceInfo(dir, path string) error {
	name, err := deviceInfoName(dir, path)
	if err != nil {
		return err
	}
	d, err := openDeviceInfoDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove device-info %s: %w", path, err)
	}
	defer func() { _ = d.Close() }()
	if err := unix.Unlinkat(int(d.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove device-info %s: %w", path, err)
	}
	return nil
}
