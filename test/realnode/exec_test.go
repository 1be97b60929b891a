package realnode

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKubectlExecIntoDaemonPod runs kubectl exec into node-1's
// kuryr-daemon container (the API server reaching the kubelet on the
// fabric through its egress proxy, the kubelet reaching containerd's
// streaming server): `kuryrctl devices` in the container reads the node's
// simulated PCI bus, its /sys.
func TestKubectlExecIntoDaemonPod(t *testing.T) {
	ctx := setup(t, "realnode-exec")
	pod, err := env.DaemonPod(ctx, env.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, env.Kubectl(), "--kubeconfig", env.Kubeconfig(), "exec", "-n", pod.Namespace, pod.Name,
		"-c", "daemon", "--", "/usr/bin/kuryrctl", "devices").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl exec %s -- kuryrctl devices: %v\n%s", pod.Name, err, out)
	}
	if !strings.HasPrefix(string(out), "PCI ") || !strings.Contains(string(out), "NETDEV") {
		t.Errorf("kuryrctl devices in the daemon container printed %q, want its table of the node's PCI devices", out)
	}
}
