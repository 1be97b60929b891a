package binding

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// WriteDeviceInfo writes the device-info file for a PCI device at path,
// creating its directory (the spec requires that) and replacing the file
// atomically if it exists (a retried ADD).
func WriteDeviceInfo(path, pciAddress string) error {
	data, err := json.Marshal(DeviceInfo{
		Type:    DeviceInfoTypePCI,
		Version: DeviceInfoVersion,
		PCI:     &PCIDeviceInfo{PCIAddress: pciAddress},
	})
	if err != nil {
		return fmt.Errorf("encode device-info for %s: %w", pciAddress, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create device-info directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".devinfo-*")
	if err != nil {
		return fmt.Errorf("write device-info %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o444)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write device-info %s: %w", path, err)
	}
	return nil
}

// ReadDeviceInfo reads a device-info file.
func ReadDeviceInfo(path string) (DeviceInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return DeviceInfo{}, fmt.Errorf("read device-info: %w", err)
	}
	var di DeviceInfo
	if err := json.Unmarshal(data, &di); err != nil {
		return DeviceInfo{}, fmt.Errorf("parse device-info %s: %w", path, err)
	}
	return di, nil
}

// RemoveDeviceInfo deletes the device-info file; a missing file is fine.
func RemoveDeviceInfo(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove device-info %s: %w", path, err)
	}
	return nil
}
