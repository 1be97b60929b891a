package aio

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupTree is one cgroup path (such as /kuryr-aio-ab12cd-node-1) in every
// cgroup hierarchy the host mounts: a real node's cgroup parent. The
// kubelet's pods go under it (cgroupRoot), and containerd and the kubelet
// run in its "system" child, so that every process of the node, shims and
// containers included, can be found and killed by its cgroup.
type cgroupTree struct {
	Path        string   // the cgroup path, e.g. /kuryr-aio-ab12cd-node-1
	hierarchies []string // mount points, e.g. /sys/fs/cgroup/memory
}

// cgroupMounts lists the mount points of the cgroup (v1) and cgroup2
// hierarchies.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if fs := fields[sep+1]; fs == "cgroup" || fs == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup file system is mounted")
	}
	return out, nil
}

// createCgroupTree makes path and path/system in every hierarchy.
func createCgroupTree(path string) (*cgroupTree, error) {
	hs, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	t := &cgroupTree{Path: path, hierarchies: hs}
	for _, h := range hs {
		for _, dir := range []string{filepath.Join(h, path), filepath.Join(h, path, "system")} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, errors.Join(fmt.Errorf("create cgroup %s: %w", dir, err), t.remove())
			}
			if err := inheritCpuset(dir); err != nil {
				return nil, errors.Join(err, t.remove())
			}
		}
	}
	return t, nil
}

// inheritCpuset gives a new cgroup v1 cpuset its parent's CPUs and memory
// nodes: it starts with none, and a process cannot join it (ENOSPC).
// Nothing to do in other hierarchies.
func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil // not the cpuset hierarchy
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
			return fmt.Errorf("set %s of cgroup %s: %w", f, dir, err)
		}
	}
	return nil
}

// enterSystem moves pid into path/system in every hierarchy.
func (t *cgroupTree) enterSystem(pid int) error {
	for _, h := range t.hierarchies {
		procs := filepath.Join(h, t.Path, "system", "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move pid %d to %s: %w", pid, procs, err)
		}
	}
	return nil
}

// pids lists the processes in the tree, in any hierarchy.
func (t *cgroupTree) pids() []int {
	seen := map[int]bool{}
	for _, h := range t.hierarchies {
		_ = filepath.WalkDir(filepath.Join(h, t.Path), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, s := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(s); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	return out
}

// killAll SIGKILLs every process in the tree until none is left (processes
// forking meanwhile are caught on the next round), for up to 10 s.
func (t *cgroupTree) killAll() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := t.pids()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", t.Path, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// remove kills what is left in the tree and removes its cgroups, deepest
// first, in every hierarchy. A missing tree is not an error.
func (t *cgroupTree) remove() error {
	errs := []error{t.killAll()}
	for _, h := range t.hierarchies {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, t.Path), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			// A cgroup whose last process just died can be busy for a
			// moment.
			var err error
			for try := 0; try < 50; try++ {
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) || !errors.Is(err, syscall.EBUSY) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// podPIDs lists the processes of the pod with uid (the kubelet's cgroup
// kubepods[/<qos>]/pod<uid> and its children) in the tree.
func (t *cgroupTree) podPIDs(uid string) []int {
	for _, h := range t.hierarchies {
		var found []int
		_ = filepath.WalkDir(filepath.Join(h, t.Path), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || d.Name() != "pod"+uid {
				return nil
			}
			found = append(found, (&cgroupTree{Path: strings.TrimPrefix(p, h), hierarchies: []string{h}}).pids()...)
			return filepath.SkipDir
		})
		if len(found) > 0 {
			return found
		}
	}
	return nil
}
