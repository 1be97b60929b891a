package bench

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CPUUse is where the machine's CPU time went over a window of a run
// (the first pod create to the last ADD's return): the CPU seconds each
// process of the environment used, the bench process's own (the kubelet
// stand-ins, the simulated cloud and node VMs run inside it) and those of
// the programs it ran and waited for (the CNI plugins the stand-ins
// call), beside the machine's totals over all its CPUs (/proc/stat).
type CPUUse struct {
	Window time.Duration
	CPUs   int
	// Processes, most CPU first; processes of the same program on several
	// nodes (the daemons) are summed under one name.
	Processes []ProcessCPU `json:",omitempty"`
	// The machine's CPU seconds over the window, all CPUs summed: User
	// (nice included), System, IRQ (hard and soft), Idle (I/O wait
	// included), Steal.
	User, System, IRQ, Idle, Steal float64
}

// ProcessCPU is the CPU seconds (user + system) Count processes named
// Name used over the window.
type ProcessCPU struct {
	Name    string
	Count   int
	Seconds float64
}

// cpuSnapshot is the CPU time so far of the named processes (clock ticks,
// summed by name, with how many) and the machine's /proc/stat "cpu" line.
type cpuSnapshot struct {
	at      time.Time
	ticks   map[string]int64
	count   map[string]int
	machine []int64
}

// watched is a process the bench takes the CPU time of: pid's own, or,
// with children, what it waited for of its children.
type watched struct {
	name     string
	pid      int
	children bool
}

// takeCPU reads the CPU time so far of procs and of the machine under
// procRoot. A process that is gone is left out.
func takeCPU(procRoot string, procs []watched) (cpuSnapshot, error) {
	s := cpuSnapshot{at: time.Now(), ticks: map[string]int64{}, count: map[string]int{}}
	for _, p := range procs {
		t, err := readProcTicks(procRoot, p.pid)
		if err != nil {
			continue
		}
		v := t.own
		if p.children {
			v = t.children
		}
		s.ticks[p.name] += v
		s.count[p.name]++
	}
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return s, fmt.Errorf("machine CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]
	if len(f) < 9 || f[0] != "cpu" {
		return s, fmt.Errorf("machine CPU time: first line of %s is %q", filepath.Join(procRoot, "stat"), line)
	}
	for _, x := range f[1:9] {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return s, fmt.Errorf("machine CPU time: %q: %w", line, err)
		}
		s.machine = append(s.machine, v)
	}
	return s, nil
}

// cpuUse is what was used between snapshots a and b on a machine of cpus
// CPUs.
func cpuUse(a, b cpuSnapshot, cpus int) CPUUse {
	u := CPUUse{Window: b.at.Sub(a.at), CPUs: cpus}
	sec := func(ticks int64) float64 { return float64(ticks) / clockTicks }
	for name, t := range b.ticks {
		if _, ok := a.ticks[name]; !ok {
			continue // not running at the start: its CPU so far is not the window's
		}
		u.Processes = append(u.Processes, ProcessCPU{Name: name, Count: b.count[name], Seconds: sec(t - a.ticks[name])})
	}
	slices.SortFunc(u.Processes, func(x, y ProcessCPU) int {
		return cmp.Or(cmp.Compare(y.Seconds, x.Seconds), strings.Compare(x.Name, y.Name))
	})
	if len(a.machine) == 8 && len(b.machine) == 8 {
		d := make([]float64, 8)
		for i := range d {
			d[i] = sec(b.machine[i] - a.machine[i])
		}
		u.User, u.System, u.Idle, u.IRQ, u.Steal = d[0]+d[1], d[2], d[3]+d[4], d[5]+d[6], d[7]
	}
	return u
}

// Busy is the machine's CPU seconds not idle over the window.
func (u CPUUse) Busy() float64 { return u.User + u.System + u.IRQ + u.Steal }

// String says it in one paragraph: the machine's busy share, then each
// process's seconds and share of the window's CPU capacity, then what no
// listed process accounts for (kernel threads, other programs).
func (u CPUUse) String() string {
	capacity := u.Window.Seconds() * float64(u.CPUs)
	if capacity <= 0 {
		return "no window"
	}
	pc := func(v float64) string { return fmt.Sprintf("%.0f %%", 100*v/capacity) }
	s := fmt.Sprintf("%.1f s × %d CPUs = %.1f CPU s, busy %.1f s (%s: user %.1f, system %.1f, interrupts %.1f, steal %.1f)",
		u.Window.Seconds(), u.CPUs, capacity, u.Busy(), pc(u.Busy()), u.User, u.System, u.IRQ, u.Steal)
	var parts []string
	listed := 0.0
	for _, p := range u.Processes {
		name := p.Name
		if p.Count > 1 {
			name = fmt.Sprintf("%s ×%d", name, p.Count)
		}
		parts = append(parts, fmt.Sprintf("%s %.1f s (%s)", name, p.Seconds, pc(p.Seconds)))
		listed += p.Seconds
	}
	if len(parts) > 0 {
		s += "; " + strings.Join(parts, ", ")
	}
	return s + fmt.Sprintf("; not in these processes (kernel threads, other programs) %.1f s (%s)", u.Busy()-listed, pc(u.Busy()-listed))
}
