package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClient writes a shell script standing in for the mariadb client: its
// first run fails as the real client does on a deadlock (when deadlock is
// true) or on another error; later runs answer 2 to every ROW_COUNT().
func fakeClient(t *testing.T, deadlock bool) []string {
	t.Helper()
	dir := t.TempDir()
	msg := "ERROR 1146 (42S02) at line 1: Table 'neutron.subports' doesn't exist"
	if deadlock {
		msg = "ERROR 1213 (40001) at line 1: Deadlock found when trying to get lock; try restarting transaction"
	}
	script := `#!/bin/sh
if [ ! -e "` + dir + `/ran" ]; then
	: >"` + dir + `/ran"
	read -r _
	echo "` + msg + `" >&2
	exit 1
fi
while read -r line; do
	case $line in "SELECT ROW_COUNT();") echo 2 ;; esac
done
`
	path := filepath.Join(dir, "mariadb")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	// Run through /bin/sh, never exec'd itself: a parallel test's fork can
	// inherit this file's write descriptor for an instant, and exec of a file
	// open for writing fails with ETXTBSY ("text file busy").
	return []string{"/bin/sh", path}
}

func TestAgentRetriesAfterDeadlock(t *testing.T) {
	t.Parallel()
	a := &Agent{Period: 5 * time.Millisecond, Client: fakeClient(t, true)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ports, _, _ := a.Activated(); ports >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pass after the deadlock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, _, deadlocks := a.Activated(); deadlocks != 1 {
		t.Errorf("deadlocks = %d, want 1", deadlocks)
	}
}

func TestAgentStopsOnOtherErrors(t *testing.T) {
	t.Parallel()
	a := &Agent{Period: 5 * time.Millisecond, Client: fakeClient(t, false)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "ERROR 1146") {
		t.Fatalf("Run = %v, want the client's error 1146", err)
	}
}
