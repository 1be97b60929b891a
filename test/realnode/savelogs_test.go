package realnode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveLogsKeepsTheKuryrPodsLogs: what a failed test keeps
// (aio.Env.SaveLogs) holds, beside the control plane's and the kubelet's
// logs, the container log of node-1's kuryr-daemon pod, not empty, and
// nothing of the test's own namespaces.
func TestSaveLogsKeepsTheKuryrPodsLogs(t *testing.T) {
	ctx := setup(t, "realnode-savelogs")
	pod, err := env.DaemonPod(ctx, env.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := env.SaveLogs(dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "kubelet-node-1.log")); err != nil {
		t.Errorf("the kubelet's log is not kept: %v", err)
	}
	logs, err := filepath.Glob(filepath.Join(dst, "pods-node-1", pod.Namespace+"_"+pod.Name+"_*", "daemon", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatalf("no container log of pod %s/%s kept under %s/pods-node-1", pod.Namespace, pod.Name, dst)
	}
	if b, err := os.ReadFile(logs[0]); err != nil || len(b) == 0 {
		t.Errorf("kept log %s: %d bytes, %v; want what the daemon printed", logs[0], len(b), err)
	}
	entries, err := os.ReadDir(filepath.Join(dst, "pods-node-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "kuryr-dpdk_") && !strings.HasPrefix(e.Name(), "kube-system_") {
			t.Errorf("kept %s: only kuryr-dpdk's and kube-system's pods' logs are kept", e.Name())
		}
	}
}
