package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCPUUseFromProc: the CPU a run reports is the difference of two
// readings of /proc: each watched process's own ticks (two daemons summed
// under one name), the ticks of the children a process waited for, and
// the machine's "cpu" line; a process that started after the first
// reading is left out, and what no process accounts for is said.
func TestCPUUseFromProc(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, comm string, utime, stime, cutime, cstime int) {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
		line := fmt.Sprintf("%d (%s) S 1 %d 0 0 -1 0 0 0 0 0 %d %d %d %d 20 0 1 0 0 0 0\n", pid, comm, pid, utime, stime, cutime, cstime)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	machine := func(user, nice, system, idle, iowait, irq, softirq, steal int) {
		line := fmt.Sprintf("cpu  %d %d %d %d %d %d %d %d 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n", user, nice, system, idle, iowait, irq, softirq, steal)
		if err := os.WriteFile(filepath.Join(root, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	procs := []watched{
		{name: "kube-apiserver", pid: 10}, {name: "kuryr-daemon", pid: 11}, {name: "kuryr-daemon", pid: 12},
		{name: "bench", pid: 13}, {name: "bench's children", pid: 13, children: true}, {name: "late", pid: 14},
	}
	write(10, "kube apiserver", 100, 50, 0, 0) // a space in the command
	write(11, "kuryr-daemon", 10, 10, 0, 0)
	write(12, "kuryr-daemon", 20, 0, 0, 0)
	write(13, "bench-aio", 5, 5, 7, 3)
	machine(1000, 10, 500, 5000, 100, 5, 15, 0)
	a, err := takeCPU(root, procs)
	if err != nil {
		t.Fatal(err)
	}
	write(10, "kube apiserver", 300, 150, 0, 0) // +300 ticks
	write(11, "kuryr-daemon", 30, 20, 0, 0)     // +30
	write(12, "kuryr-daemon", 40, 10, 0, 0)     // +30
	write(13, "bench-aio", 55, 25, 47, 13)      // +70 own, +50 children
	write(14, "late", 900, 0, 0, 0)
	machine(1400, 10, 700, 5100, 150, 10, 30, 0) // user +400, system +200, idle +150, irq +20
	b, err := takeCPU(root, procs)
	if err != nil {
		t.Fatal(err)
	}
	b.at = a.at.Add(4 * time.Second)
	u := cpuUse(a, b, 2)
	want := []ProcessCPU{{"kube-apiserver", 1, 3}, {"bench", 1, 0.7}, {"kuryr-daemon", 2, 0.6}, {"bench's children", 1, 0.5}}
	if fmt.Sprint(u.Processes) != fmt.Sprint(want) {
		t.Errorf("processes %v, want %v", u.Processes, want)
	}
	if u.User != 4 || u.System != 2 || u.Idle != 1.5 || u.IRQ != 0.2 || u.Busy() != 6.2 {
		t.Errorf("machine user %v system %v idle %v irq %v busy %v, want 4, 2, 1.5, 0.2, 6.2", u.User, u.System, u.Idle, u.IRQ, u.Busy())
	}
	s := u.String()
	for _, part := range []string{"4.0 s × 2 CPUs = 8.0 CPU s, busy 6.2 s (78 %", "kube-apiserver 3.0 s (38 %)", "kuryr-daemon ×2 0.6 s (8 %)",
		"not in these processes (kernel threads, other programs) 1.4 s (18 %)"} {
		if !strings.Contains(s, part) {
			t.Errorf("%q does not say %q", s, part)
		}
	}
}

// TestAPIRequestsByKind: kube-apiserver's request counters and duration
// sums are grouped by verb, resource and subresource (codes, groups and
// versions summed), and a window reports only what changed in it, most
// requests first.
func TestAPIRequestsByKind(t *testing.T) {
	metrics := func(puts, patches, putSeconds float64) []byte {
		return fmt.Appendf(nil, `# HELP apiserver_request_total x
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="kuryr.openstack.org",resource="kuryrnodes",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} %v
apiserver_request_total{code="409",component="apiserver",dry_run="",group="kuryr.openstack.org",resource="kuryrnodes",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="PATCH",version="v1"} %v
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="nodes",scope="cluster",subresource="",verb="LIST",version="v1"} 7
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="kuryr.openstack.org",resource="kuryrnodes",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} %v
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="kuryr.openstack.org",resource="kuryrnodes",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 99
`, puts, patches, putSeconds)
	}
	a, err := parseAPIServerCounts(metrics(10, 5, 1.5))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseAPIServerCounts(metrics(40, 25, 9))
	if err != nil {
		t.Fatal(err)
	}
	got := apiRequestsString(apiRequests(a, b))
	if want := "50 requests: PUT kuryrnodes/status 30 (7.5 s), PATCH pods 20 (0.0 s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
