package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// NodeCNIBin makes dir a node's CNI binary directory as `kuryrctl
// install-cni` leaves it: the files names of built (every file when none
// is named; binaries GoBuild made: hard links where it can, else copies;
// symlinks as symlinks) and the node-local file that names socket as
// kuryr-daemon's (cniapi.NodeConfigName). Tests that run several nodes
// with one build give each its own directory, as each node VM has its own.
func NodeCNIBin(built, dir, socket string, names ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(built)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == cniapi.NodeConfigName || (len(names) > 0 && !slices.Contains(names, e.Name())) {
			continue
		}
		src, dst := filepath.Join(built, e.Name()), filepath.Join(dir, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, dst)
			}
			if err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return fmt.Errorf("install %s into %s: %w", e.Name(), dir, err)
			}
		}
	}
	b, err := cniapi.MarshalNodeConfig(cniapi.NodeConfig{DaemonSocket: socket})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, cniapi.NodeConfigName), b, 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
