package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Machine describes the host a run was made on.
type Machine struct {
	CPUs     int
	CPUModel string
	MemTotal string // as /proc/meminfo says, e.g. "24563712 kB"
	Kernel   string
}

// ReadMachine reads the machine's description under procRoot (/proc).
func ReadMachine(procRoot string) Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	m.CPUModel = firstField(filepath.Join(procRoot, "cpuinfo"), "model name")
	m.MemTotal = firstField(filepath.Join(procRoot, "meminfo"), "MemTotal")
	if b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/osrelease")); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs (nproc), %s, MemTotal %s, Linux %s", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel)
}

func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
