package aio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pidFile in a state directory names the process that owns the environment.
const pidFile = "kuryr-aio.pid"

// reapStale removes what environments whose process died without tearing
// down (SIGKILL, a test binary killed by its timeout) left behind: their
// network namespaces, real nodes' processes (containerd's shims and the
// containers outlive their parent), cgroups and mount namespaces, and state
// directories. Their direct child processes died with them (SIGKILL on
// parent death). Environments of live processes are left alone.
func reapStale() ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), "kuryr-aio-*-*"))
	if err != nil {
		return nil, err
	}
	var reaped []string
	var errs []error
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, pidFile))
		if err != nil {
			continue // not an environment's state directory, or one starting
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		id := strings.SplitN(strings.TrimPrefix(filepath.Base(dir), "kuryr-aio-"), "-", 2)[0]
		entries, _ := os.ReadDir(netnsDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "kuryr-aio-"+id+"-") {
				errs = append(errs, removeNetNS(filepath.Join(netnsDir, e.Name())))
			}
		}
		errs = append(errs, reapRealNodes(dir, id))
		errs = append(errs, os.RemoveAll(dir))
		reaped = append(reaped, id)
	}
	if err := errors.Join(errs...); err != nil {
		return reaped, fmt.Errorf("remove stale environments %v: %w", reaped, err)
	}
	return reaped, nil
}

// reapRealNodes kills the processes of environment id's real nodes, removes
// their cgroups and drops their mount namespaces (held under dir/mntns).
func reapRealNodes(dir, id string) error {
	var errs []error
	hs, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, h := range hs {
		trees, _ := filepath.Glob(filepath.Join(h, "kuryr-aio-"+id+"-*"))
		for _, tree := range trees {
			t := &cgroupTree{Path: strings.TrimPrefix(tree, h), hierarchies: hs}
			errs = append(errs, t.remove())
		}
	}
	holder := filepath.Join(dir, "mntns")
	files, _ := os.ReadDir(holder)
	for _, f := range files {
		errs = append(errs, removeMountNS(filepath.Join(holder, f.Name())))
	}
	if _, err := os.Stat(holder); err == nil {
		if err := syscall.Unmount(holder, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", holder, err))
		}
	}
	return errors.Join(errs...)
}
