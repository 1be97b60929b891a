package realnode

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// TestDaemonRunsAsDaemonSetPodAndNetworksPods checks that node-1's
// kuryr-daemon is the all-in-one overlay's DaemonSet pod, Running and
// ready from the imported kuryr-dpdk image, that its init container
// (kuryrctl install-cni) installed the image's kuryr-cni and the conflist
// into the node's CNI directories, and that a pod gets its interfaces
// through it.
func TestDaemonRunsAsDaemonSetPodAndNetworksPods(t *testing.T) {
	ctx := setup(t, "realnode-daemonset")
	n := env.Nodes[0]
	if n.Daemon != nil {
		t.Errorf("kuryr-daemon of %s is a process of the environment (%s), want the DaemonSet's pod", n.Name, n.Daemon.Name)
	}
	// The environment waited for the daemon's socket to answer ready; the
	// kubelet marks the container ready at its next readiness probe (every
	// 10 s by default), which may come later.
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if pod, err = env.DaemonPod(ctx, n); err != nil {
			return false, err
		}
		for _, st := range pod.Status.ContainerStatuses {
			if st.Name == "daemon" {
				return st.Ready, nil
			}
		}
		return false, nil
	})
	if pod == nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Errorf("daemon container not ready 30 s after its socket answered ready: %v", err)
	}
	if pod.Status.Phase != corev1.PodRunning || !pod.Spec.HostNetwork {
		t.Errorf("daemon pod %s: phase %s, hostNetwork %v; want Running on the host network", pod.Name, pod.Status.Phase, pod.Spec.HostNetwork)
	}
	if len(pod.OwnerReferences) != 1 || pod.OwnerReferences[0].Kind != "DaemonSet" {
		t.Errorf("daemon pod %s owners %v, want the DaemonSet", pod.Name, pod.OwnerReferences)
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name == "daemon" && (!st.Ready || st.Image != "docker.io/"+aio.KuryrImage) {
			t.Errorf("daemon container: ready %v, image %q; want ready from docker.io/%s", st.Ready, st.Image, aio.KuryrImage)
		}
	}
	if len(pod.Status.InitContainerStatuses) != 1 || pod.Status.InitContainerStatuses[0].State.Terminated == nil ||
		pod.Status.InitContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Errorf("install-cni init container: %+v, want terminated with exit code 0", pod.Status.InitContainerStatuses)
	}

	installed, err := os.ReadFile(filepath.Join(n.FS("/opt/cni/bin"), "kuryr-cni"))
	if err != nil {
		t.Fatalf("kuryr-cni not in the node's /opt/cni/bin: %v", err)
	}
	built, err := os.ReadFile(filepath.Join(env.BinDir(), "kuryr-cni"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(installed, built) {
		t.Errorf("the node's /opt/cni/bin/kuryr-cni (%d bytes) is not the image's (%d bytes)", len(installed), len(built))
	}
	conf, err := os.ReadFile(filepath.Join(n.FS("/etc/cni/net.d"), "10-kuryr.conflist"))
	if err != nil || !bytes.Contains(conf, []byte(`"type": "kuryr-cni"`)) {
		t.Errorf("the node's /etc/cni/net.d/10-kuryr.conflist: %q, %v; want the ConfigMap kuryr-cni's", conf, err)
	}

	app := runPod(t, ctx, appPod("realnode-daemonset", "app", aio.MgmtNAD))
	requireInterfaces(t, ctx, app)
	deleteAndRequireNoLeaks(t, ctx, app)
}

// TestControllerRunsAsDeploymentPod checks that kuryr-controller is the
// all-in-one overlay's Deployment: one available replica whose pod runs on
// the node's host network from the imported image, ready (its /readyz
// answers), and that it is what gives a new pod its interfaces (the
// environment runs no controller process).
func TestControllerRunsAsDeploymentPod(t *testing.T) {
	ctx := setup(t, "realnode-controller")
	if env.Controller != nil {
		t.Errorf("kuryr-controller is a process of the environment (%s), want the Deployment's pod", env.Controller.Name)
	}
	d, err := env.Clientset.AppsV1().Deployments("kuryr-dpdk").Get(ctx, "kuryr-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.AvailableReplicas != 1 {
		t.Errorf("Deployment kuryr-controller: %d available replicas, want 1", d.Status.AvailableReplicas)
	}
	pods, err := env.Clientset.CoreV1().Pods("kuryr-dpdk").List(ctx, metav1.ListOptions{LabelSelector: "app=kuryr-controller"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d kuryr-controller pods, want 1", len(pods.Items))
	}
	p := pods.Items[0]
	if !p.Spec.HostNetwork || p.Status.PodIP != env.Nodes[0].IP() {
		t.Errorf("controller pod %s: hostNetwork %v, IP %s; want the host network of %s (%s)", p.Name, p.Spec.HostNetwork, p.Status.PodIP, env.Nodes[0].Name, env.Nodes[0].IP())
	}
	if len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready || p.Status.ContainerStatuses[0].Image != "docker.io/"+aio.KuryrImage {
		t.Errorf("controller container statuses %+v, want one ready from docker.io/%s", p.Status.ContainerStatuses, aio.KuryrImage)
	}
	app := runPod(t, ctx, appPod("realnode-controller", "app", aio.MgmtNAD))
	requireInterfaces(t, ctx, app)
	deleteAndRequireNoLeaks(t, ctx, app)
}
