package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is a process's resident set, from /proc/PID/status.
type Memory struct {
	// RSS is VmRSS now; Peak is VmHWM (the high-water mark), in bytes.
	RSS, Peak int64
	// Anon and File split RSS into anonymous memory (heap, stacks) and
	// file-backed pages (the binary's code and data).
	Anon, File int64
}

// ReadMemory reads VmRSS and VmHWM of pid under procRoot (normally /proc).
func ReadMemory(procRoot string, pid int) (Memory, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return Memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	defer func() { _ = f.Close() }()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		fields := strings.Fields(v) // "12345 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return Memory{}, fmt.Errorf("pid %d: %s is %q", pid, k, v)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("pid %d: %s is %q: %w", pid, k, v, err)
		}
		*dst = kb * 1024
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	return m, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// GroupCPU returns the CPU seconds (user + system, children that were
// waited for included) used so far by the live processes of process group
// pgid, and their summed RSS in bytes. A process that already exited is
// not counted.
func GroupCPU(procRoot string, pgid int) (cpuSeconds float64, rss int64, err error) {
	ticks, m, err := groupStat(procRoot, pgid)
	return float64(ticks) / clockTicks, m.RSS, err
}

// GroupMemory returns the memory of the live processes of process group
// pgid, each field summed over them (Peak: the sum of their high-water
// marks, an upper bound of the group's peak). It fails if the group has
// no process.
func GroupMemory(procRoot string, pgid int) (Memory, error) {
	_, m, err := groupStat(procRoot, pgid)
	if err == nil && m.RSS == 0 {
		err = fmt.Errorf("memory of process group %d: no process", pgid)
	}
	return m, err
}

// groupStat sums CPU ticks and memory over the live processes of pgid.
func groupStat(procRoot string, pgid int) (ticks int64, mem Memory, err error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, mem, fmt.Errorf("read %s: %w", procRoot, err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		t, err := readProcTicks(procRoot, pid)
		if err != nil || t.pgrp != pgid {
			continue // gone meanwhile, or another group's
		}
		ticks += t.own + t.children
		if m, err := ReadMemory(procRoot, pid); err == nil {
			mem.RSS += m.RSS
			mem.Peak += m.Peak
			mem.Anon += m.Anon
			mem.File += m.File
		}
	}
	return ticks, mem, nil
}

// procTicks is a process's CPU time so far, in clock ticks, from
// /proc/PID/stat: its own (user + system) and that of its children it
// waited for; and its process group.
type procTicks struct {
	own, children int64
	pgrp          int
}

// readProcTicks reads pid's procTicks under procRoot.
func readProcTicks(procRoot string, pid int) (procTicks, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procTicks{}, err
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces, cut after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procTicks{}, fmt.Errorf("pid %d: no command in its stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0]=state f[1]=ppid f[2]=pgrp ... f[11]=utime f[12]=stime f[13]=cutime f[14]=cstime
	if len(f) < 15 {
		return procTicks{}, fmt.Errorf("pid %d: %d fields in its stat after the command, want at least 15", pid, len(f))
	}
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return procTicks{}, fmt.Errorf("pid %d: stat field %d: %w", pid, 14+k, err)
		}
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procTicks{}, fmt.Errorf("pid %d: process group: %w", pid, err)
	}
	return procTicks{own: v[0] + v[1], children: v[2] + v[3], pgrp: pgrp}, nil
}
