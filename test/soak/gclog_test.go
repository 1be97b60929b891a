package soak

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGCReleasesReadsTheCollectorsLine: the count comes from the garbage
// collector's own log lines (klog's structured form, logger name and all),
// summed; other lines count nothing.
func TestGCReleasesReadsTheCollectorsLine(t *testing.T) {
	log := `I1129 21:46:14.856317   13905 gc.go:61] "released ports of vanished pods" controller="gc" released=2
E1129 21:46:15.000000   13905 gc.go:59] "garbage collection incomplete" err="x" released=7
I1129 21:47:14.856317   13905 gc.go:61] "released ports of vanished pods" released=1
`
	p := filepath.Join(t.TempDir(), "kuryr-controller.log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := gcReleases(p); err != nil || n != 3 {
		t.Fatalf("gcReleases = %d, %v; want 3", n, err)
	}
	if _, err := gcReleases(filepath.Join(t.TempDir(), "missing.log")); err == nil {
		t.Fatal("a log that cannot be read gave no error")
	}
}
