package vmnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// kuryrImage builds, once per test binary, the kuryr binaries of the
// repository at root and the kuryr-dpdk image of them (as make image does,
// into a directory Main removes) and returns the tarball.
func kuryrImage(t testing.TB, root string) string {
	t.Helper()
	shared.imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kuryr-vmpod-")
		if err != nil {
			shared.imageErr = err
			return
		}
		shared.tmpDirs = append(shared.tmpDirs, dir)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if shared.imageErr = aio.BuildKuryrBinaries(ctx, root, dir); shared.imageErr != nil {
			return
		}
		shared.image, shared.imageErr = aio.BuildKuryrImage(dir, filepath.Join(dir, "images"))
		fmt.Fprintf(os.Stderr, "built the kuryr binaries and the kuryr-dpdk image in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if shared.imageErr != nil {
		t.Fatal(shared.imageErr)
	}
	return shared.image
}

// daemonObjects renders deploy/kuryr-dpdk and returns its ConfigMap
// kuryr-cni and DaemonSet kuryr-daemon, adapted to the node VM: the images
// are never pulled (imported at boot), the daemon reaches the API server
// at guestAPIAddr (no kube-proxy), is the primary CNI, waits up to 60 s for
// a device, gets a liveness probe of 10 s timeout and six failures (TCG),
// logs its ADDs (-v=2) and takes the extra arguments args.
func daemonObjects(t *testing.T, args []string) (*corev1.ConfigMap, *appsv1.DaemonSet) {
	t.Helper()
	objs, err := testenv.Kustomize(filepath.Join(RepoRoot(t), "deploy", "kuryr-dpdk"))
	if err != nil {
		t.Fatal(err)
	}
	var cm *corev1.ConfigMap
	var ds *appsv1.DaemonSet
	for _, o := range objs {
		switch o.GetKind() + "/" + o.GetName() {
		case "ConfigMap/kuryr-cni":
			cm = &corev1.ConfigMap{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, cm); err != nil {
				t.Fatal(err)
			}
		case "DaemonSet/kuryr-daemon":
			ds = &appsv1.DaemonSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cm == nil || ds == nil {
		t.Fatal("deploy/kuryr-dpdk renders no ConfigMap kuryr-cni or DaemonSet kuryr-daemon")
	}
	spec := &ds.Spec.Template.Spec
	for i := range spec.InitContainers {
		spec.InitContainers[i].ImagePullPolicy = corev1.PullNever
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		c.ImagePullPolicy = corev1.PullNever
		if c.Name == "daemon" {
			c.Env = append(c.Env, corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: guestAPIIP},
				corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: "6443"})
			c.Args = append(c.Args, "--primary", "--device-timeout=60s", "-v=2")
			c.Args = append(c.Args, args...)
			// A busy TCG guest answers slower than the probes' default 1 s.
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
				if p != nil {
					p.TimeoutSeconds, p.PeriodSeconds, p.FailureThreshold = 10, 10, 6
				}
			}
		}
	}
	return cm, ds
}

// DeployDaemon applies the daemon's objects and waits until its pod runs
// on the node and the Node is Ready (containerd reports the network ready
// once kuryr-cni answers STATUS, that is once the daemon serves). args go
// to the daemon's command line.
func (n *Node) DeployDaemon(args ...string) {
	t := n.t
	t.Helper()
	cm, ds := daemonObjects(t, args)
	start := time.Now()
	if _, err := n.CS.CoreV1().ConfigMaps(cm.Namespace).Create(n.ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CS.AppsV1().DaemonSets(ds.Namespace).Create(n.ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = n.CS.AppsV1().DaemonSets(ds.Namespace).Delete(ctx, ds.Name, metav1.DeleteOptions{})
		_ = n.CS.CoreV1().ConfigMaps(cm.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{})
	})
	var pod string
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := n.CS.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=kuryr-daemon"})
		if err != nil || len(pods.Items) != 1 {
			return false, nil
		}
		pod = pods.Items[0].Name
		return pods.Items[0].Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("kuryr-daemon pod %q not running on %s: %v", pod, NodeName, err)
	}
	running := time.Now()
	n.WaitNodeCondition(corev1.NodeReady, corev1.ConditionTrue, 2*time.Minute)
	t.Logf("timings: DaemonSet created → kuryr-daemon pod %s running %v, → Node Ready %v",
		pod, running.Sub(start).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// PodNetNS finds, in the guest, the network namespace containerd made
// whose eth0 holds ip, and returns its name and eth0's details.
func (n *Node) PodNetNS(ip string) (string, string) {
	n.t.Helper()
	out := n.Sh(fmt.Sprintf(`for ns in $(ls /run/netns); do
	if /bin/ip -n $ns -o addr show dev eth0 2>/dev/null | grep -q " %s/"; then echo "$ns"; /bin/ip -n $ns -d -o link show dev eth0; fi
done`, ip))
	name, link, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if name == "" {
		n.t.Fatalf("no network namespace in the guest has eth0 with %s", ip)
	}
	return name, link
}
