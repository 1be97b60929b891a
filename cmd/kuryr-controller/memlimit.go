package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent is the garbage collector's target when GOGC is unset:
// the heap may grow by half of what was live after a collection before the
// next one, not by all of it (Go's default, 100). The controller's heap is
// mostly its informer caches, so at a thousand pods Go's default let the
// process grow to 83 MiB, where 50 held it to 72 MiB; the controller's CPU
// in those runs, 13 s against 14 s, is a few percent of the machine's
// (make bench, docs/benchmarks.md).
const defaultGCPercent = 50

// setDefaultGCPercent sets defaultGCPercent unless GOGC is set (the runtime
// has read it then), and says whether it did.
func setDefaultGCPercent(getenv func(string) string) bool {
	if getenv("GOGC") != "" {
		return false
	}
	debug.SetGCPercent(defaultGCPercent)
	return true
}

// memoryLimitShare is the part of the container's memory limit the Go
// runtime aims to stay under: the GC works harder as the heap nears it,
// well before the kernel's OOM killer acts at the limit itself.
const memoryLimitShare = 0.9

// defaultMemoryLimit returns the soft memory limit to give the Go runtime
// when GOMEMLIMIT is not set: memoryLimitShare of the cgroup v2 limit
// (<root>/sys/fs/cgroup/memory.max). ok is false when GOMEMLIMIT is set
// (the runtime already reads it) or there is no limit to follow.
func defaultMemoryLimit(getenv func(string) string, root string) (limit int64, ok bool, err error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, false, nil
	}
	path := filepath.Join(root, "sys/fs/cgroup/memory.max")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the container's memory limit: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("memory limit %q in %s is not a number of bytes", s, path)
	}
	return int64(float64(n) * memoryLimitShare), true, nil
}
