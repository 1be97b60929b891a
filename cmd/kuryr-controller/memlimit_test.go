package main

import (
	"os"
	"path/filepath"
	"testing"
)

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
