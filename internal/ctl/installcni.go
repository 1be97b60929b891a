package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// InstallCNIOptions say what `kuryrctl install-cni` installs where. The
// DaemonSet's init container runs it with the host's CNI directories mounted.
type InstallCNIOptions struct {
	// Shim is the kuryr-cni binary to install (in the image: /usr/bin/kuryr-cni).
	Shim string
	// BinDir is the runtime's CNI binary directory; the shim goes there
	// under its own base name.
	BinDir string
	// ConfDir is the runtime's CNI configuration directory.
	ConfDir string
	// ConflistName is the file name of the network configuration in
	// ConfDir, e.g. 10-kuryr.conflist (runtimes take the first by name).
	ConflistName string
	// Conflist is a network configuration list file to install as it is
	// (the DaemonSet mounts it from the ConfigMap kuryr-cni). Empty: the
	// one DefaultConflist makes from NetworkName.
	Conflist    string
	NetworkName string
	// DaemonSocket is kuryr-daemon's socket, written to the node-local
	// file next to the shim (cniapi.NodeConfigName), the only place the
	// shim takes it from.
	DaemonSocket string
}

// DefaultInstallCNIOptions are the paths of a Debian/containerd node and
// of the image.
func DefaultInstallCNIOptions() InstallCNIOptions {
	return InstallCNIOptions{
		Shim:         "/usr/bin/kuryr-cni",
		BinDir:       "/opt/cni/bin",
		ConfDir:      "/etc/cni/net.d",
		ConflistName: "10-kuryr.conflist",
		NetworkName:  "kuryr",
		DaemonSocket: "/run/kuryr-dpdk/cni.sock",
	}
}

// Validate names each option that is wrong.
func (o InstallCNIOptions) Validate() error {
	var errs []error
	for _, f := range []struct{ flag, value string }{
		{"--shim", o.Shim}, {"--cni-bin-dir", o.BinDir}, {"--cni-conf-dir", o.ConfDir}, {"--conflist-name", o.ConflistName},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s: required", f.flag))
		}
	}
	if o.ConflistName != "" && (strings.ContainsRune(o.ConflistName, '/') || !strings.HasSuffix(o.ConflistName, ".conflist")) {
		errs = append(errs, fmt.Errorf("--conflist-name %q: a file name ending in .conflist", o.ConflistName))
	}
	if o.Conflist == "" && o.NetworkName == "" {
		errs = append(errs, errors.New("--network-name: required unless --conflist is given"))
	}
	if _, err := cniapi.MarshalNodeConfig(cniapi.NodeConfig{DaemonSocket: o.DaemonSocket}); err != nil {
		errs = append(errs, fmt.Errorf("--daemon-socket: %w", err))
	}
	return errors.Join(errs...)
}

// DefaultConflist is the network configuration list of kuryr-cni as the
// cluster's network: one plugin, asking the runtime for the pod's
// annotations and for a device-info file path. It names no daemon socket:
// the shim takes that from the node-local file only.
func DefaultConflist(networkName string) ([]byte, error) {
	b, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.1.0",
		"name":       networkName,
		"plugins": []any{map[string]any{
			"type":         "kuryr-cni",
			"capabilities": map[string]bool{"io.kubernetes.cri.pod-annotations": true, "CNIDeviceInfoFile": true},
		}},
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// Installed says what InstallCNI did with one file.
type Installed struct {
	Path string
	// Changed is false when the file was already there with the same
	// content and mode, and was left alone.
	Changed bool
}

// InstallCNI installs the shim and the node-local file naming the daemon's
// socket into BinDir and then the conflist into ConfDir, in that order: a
// runtime that sees the configuration must find the binary. Each file is written to a temporary file in its target
// directory, synced and renamed over the target, so a runtime never reads
// half a file. Running it again with the same inputs changes nothing.
func InstallCNI(o InstallCNIOptions) ([]Installed, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	conflist, err := o.conflist()
	if err != nil {
		return nil, err
	}
	shim, err := os.Open(o.Shim)
	if err != nil {
		return nil, fmt.Errorf("shim: %w", err)
	}
	defer shim.Close()
	var done []Installed
	changed, err := writeFileAtomic(filepath.Join(o.BinDir, filepath.Base(o.Shim)), shim, 0o755)
	if err != nil {
		return done, err
	}
	done = append(done, Installed{Path: filepath.Join(o.BinDir, filepath.Base(o.Shim)), Changed: changed})
	nodeConf, err := cniapi.MarshalNodeConfig(cniapi.NodeConfig{DaemonSocket: o.DaemonSocket})
	if err != nil {
		return done, err
	}
	nodePath := filepath.Join(o.BinDir, cniapi.NodeConfigName)
	if changed, err = writeFileAtomic(nodePath, bytes.NewReader(nodeConf), 0o644); err != nil {
		return done, err
	}
	done = append(done, Installed{Path: nodePath, Changed: changed})
	target := filepath.Join(o.ConfDir, o.ConflistName)
	changed, err = writeFileAtomic(target, bytes.NewReader(conflist), 0o644)
	if err != nil {
		return done, err
	}
	return append(done, Installed{Path: target, Changed: changed}), nil
}

// conflist returns the configuration to install, checked to be a network
// configuration list with a kuryr-cni plugin.
func (o InstallCNIOptions) conflist() ([]byte, error) {
	var b []byte
	var err error
	what := "the default conflist"
	if o.Conflist != "" {
		what = o.Conflist
		if b, err = os.ReadFile(o.Conflist); err != nil {
			return nil, fmt.Errorf("conflist: %w", err)
		}
	} else if b, err = DefaultConflist(o.NetworkName); err != nil {
		return nil, err
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a network configuration list: %w", what, err)
	}
	for _, p := range list.Plugins {
		if p.Network.Type != "kuryr-cni" {
			continue
		}
		var f struct {
			DaemonSocket string `json:"daemonSocket"`
		}
		if err := json.Unmarshal(p.Bytes, &f); err != nil {
			return nil, fmt.Errorf("%s: kuryr-cni plugin: %w", what, err)
		}
		if f.DaemonSocket != "" && f.DaemonSocket != o.DaemonSocket {
			return nil, fmt.Errorf("%s: daemonSocket %q differs from --daemon-socket %q (the shim would refuse every call); remove the field",
				what, f.DaemonSocket, o.DaemonSocket)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s: no plugin of type kuryr-cni in network %q", what, list.Name)
}

// writeFileAtomic makes path hold what r gives, with mode: it writes a
// temporary file in path's directory, syncs it, renames it over path and
// syncs the directory. When path already has that content and mode it does
// nothing and returns false.
func writeFileAtomic(path string, r io.Reader, mode os.FileMode) (changed bool, err error) {
	content, err := io.ReadAll(r)
	if err != nil {
		return false, fmt.Errorf("read the content of %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode() == mode {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(content); err != nil {
		return false, fmt.Errorf("install %s: write %s: %w", path, tmp.Name(), err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return false, fmt.Errorf("install %s: sync %s: %w", path, tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return false, fmt.Errorf("install %s: close %s: %w", path, tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	if err = syncDir(dir); err != nil {
		return true, fmt.Errorf("install %s: sync directory: %w", path, err)
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
