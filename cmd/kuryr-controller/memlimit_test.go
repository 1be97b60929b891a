package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestDefaultGCPercent: with GOGC unset the controller's garbage collector
// runs at defaultGCPercent; a GOGC the operator set is left to the runtime.
// Not parallel: it changes the process's garbage collector setting.
func TestDefaultGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	if setDefaultGCPercent(func(string) string { return "200" }) {
		t.Error("GOGC=200 set: the default replaced it")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: the runtime's target became %d, want it untouched (100)", got)
	}
	if !setDefaultGCPercent(func(string) string { return "" }) {
		t.Error("GOGC unset: no default set")
	}
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: the runtime's target is %d, want %d", got, defaultGCPercent)
	}
}

func TestDefaultMemoryLimit(t *testing.T) {
	t.Parallel()
	root := func(content string) string {
		dir := t.TempDir()
		if content != "" {
			p := filepath.Join(dir, "sys/fs/cgroup")
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "memory.max"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	unset := func(string) string { return "" }
	if l, ok, err := defaultMemoryLimit(unset, root("1000000000\n")); err != nil || !ok || l != 900000000 {
		t.Errorf("1 GB limit: %d, %v, %v; want 900000000", l, ok, err)
	}
	if _, ok, err := defaultMemoryLimit(func(string) string { return "512MiB" }, root("1000000000\n")); err != nil || ok {
		t.Errorf("GOMEMLIMIT set: ok %v, %v; want it left to the runtime", ok, err)
	}
	if _, ok, err := defaultMemoryLimit(unset, root("max\n")); err != nil || ok {
		t.Errorf("no limit: ok %v, %v", ok, err)
	}
	if _, ok, err := defaultMemoryLimit(unset, root("")); err != nil || ok {
		t.Errorf("no cgroup v2 file: ok %v, %v", ok, err)
	}
	if _, _, err := defaultMemoryLimit(unset, root("lots\n")); err == nil {
		t.Error("a malformed limit was accepted")
	}
}
