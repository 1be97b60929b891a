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
// network namespaces and state directories. Their child processes died with
// them (SIGKILL on parent death). Environments of live processes are left
// alone.
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
		errs = append(errs, os.RemoveAll(dir))
		reaped = append(reaped, id)
	}
	if err := errors.Join(errs...); err != nil {
		return reaped, fmt.Errorf("remove stale environments %v: %w", reaped, err)
	}
	return reaped, nil
}
