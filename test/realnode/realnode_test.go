// Package realnode tests the all-in-one's real nodes: a real containerd
// (v2) and kubelet (v1.37) per node VM, calling kuryr-cni for every pod.
// They need root and the binaries of hack/build-node-bins.sh.
package realnode

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// env is the package's environment: one real node, started by TestMain.
var env *aio.Env

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

// testMain starts the environment when it can (root, node binaries built;
// the tests say why not), runs the tests and tears it down, failing when
// the teardown leaves the node's cgroups or the state directory behind.
func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	if !testenv.HaveNodeBins() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	e, err := aio.Start(ctx, aio.Options{Nodes: 1, RealNodes: true, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the all-in-one with a real node: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "environment with a real node up in %.1f s\n", time.Since(start).Seconds())
	env = e
	code := m.Run()
	if code != 0 {
		dst := filepath.Join(os.TempDir(), "kuryr-realnode-logs-"+e.ID)
		if err := e.SaveLogs(dst); err == nil {
			fmt.Fprintf(os.Stderr, "the processes' logs are kept in %s\n", dst)
		}
	}
	cgroup := "/sys/fs/cgroup/memory/kuryr-aio-" + e.ID + "-node-1"
	if _, err := os.Stat(cgroup); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the node's cgroup %s is missing while it runs: %v\n", cgroup, err)
		code = 1
	}
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: tear down: %v\n", err)
		return 1
	}
	for _, left := range []string{cgroup, e.StateDir} {
		if _, err := os.Stat(left); !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "FAIL: %s left after teardown (%v)\n", left, err)
			code = 1
		}
	}
	return code
}

// setup checks the environment runs and makes a namespace with the NADs.
func setup(t *testing.T, namespace string) context.Context {
	t.Helper()
	testenv.RequireNodeBins(t)
	if env == nil {
		t.Fatal("the environment did not start (see TestMain's output)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if err := env.CreateNADs(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// appPod asks for networks, adapted to the real node (env.AdaptPod: the
// pause image, no token), with a short grace period.
func appPod(namespace, name, networks string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
			Annotations: map[string]string{v1alpha1.NetworksAnnotation: networks}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
		},
	}
	env.AdaptPod(pod)
	return pod
}

// TestRealNodeRunsPodNetworkedByKuryrCNI checks that the node is a real
// containerd 2.x and kubelet v1.37, and that a pod asking for the
// management network gets, through containerd's CNI call of kuryr-cni,
// eth0 and net1 with the KuryrPod's addresses in its own network
// namespace, the kubelet reporting eth0's as the pod IP; and that deleting
// it releases everything it had.
func TestRealNodeRunsPodNetworkedByKuryrCNI(t *testing.T) {
	ctx := setup(t, "realnode-run")
	node, err := env.Clientset.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := node.Status.NodeInfo.ContainerRuntimeVersion; !strings.HasPrefix(v, "containerd://2.") {
		t.Errorf("node-1 runtime %q, want containerd://2.x", v)
	}
	if v := node.Status.NodeInfo.KubeletVersion; v != testenv.KubeVersion {
		t.Errorf("node-1 kubelet %q, want %s", v, testenv.KubeVersion)
	}
	pod := runPod(t, ctx, appPod("realnode-run", "app", aio.MgmtNAD))
	want := requireInterfaces(t, ctx, pod)
	got, err := env.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if eth0, _, _ := strings.Cut(want["eth0"], "/"); got.Status.PodIP != eth0 {
		t.Errorf("pod IP %q (set by the kubelet from containerd's CNI result), want eth0's %q", got.Status.PodIP, eth0)
	}
	requireContainerdCalledKuryrCNI(t, got, node.Status.NodeInfo.ContainerRuntimeVersion)
	deleteAndRequireNoLeaks(t, ctx, pod)
}

// requireContainerdCalledKuryrCNI checks, from containerd's cache of the
// CNI results it got (aio.Env.ContainerdADD), that containerd called
// kuryr-cni for the pod's eth0 in its own conventions, and logs the call
// for the CI log.
func requireContainerdCalledKuryrCNI(t *testing.T, pod *corev1.Pod, runtime string) {
	t.Helper()
	call, err := env.ContainerdADD(pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s called %s", runtime, call)
	fmt.Fprintf(os.Stderr, "realnode: %s on %s called %s for pod %s/%s\n", runtime, pod.Spec.NodeName, call, pod.Namespace, pod.Name)
}

// TestRuntimeRestartKeepsPodInterfaces restarts containerd and the kubelet
// while a pod runs: the pod keeps its sandbox (same process, same network
// namespace), its container (same ID, no restart) and its interfaces.
func TestRuntimeRestartKeepsPodInterfaces(t *testing.T) {
	ctx := setup(t, "realnode-restart")
	pod := runPod(t, ctx, appPod("realnode-restart", "app", aio.MgmtNAD))
	want := requireInterfaces(t, ctx, pod)
	before, err := env.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsBefore, err := env.PodNetNS(ctx, pod.Namespace, pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	inoBefore := inode(t, nsBefore)

	if err := env.RestartRuntime(ctx, env.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	// The restarted kubelet syncs the pod at once; give it time to act
	// on anything it finds wrong (a new sandbox, a restarted container).
	time.Sleep(15 * time.Second)
	if err := env.WaitPodReady(ctx, pod.Namespace, pod.Name, 60*time.Second); err != nil {
		t.Fatalf("pod not ready after the restart: %v", err)
	}
	after, err := env.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Status.ContainerStatuses) != 1 || len(before.Status.ContainerStatuses) != 1 {
		t.Fatalf("container statuses before %v, after %v", before.Status.ContainerStatuses, after.Status.ContainerStatuses)
	}
	b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]
	if a.ContainerID != b.ContainerID || a.RestartCount != 0 {
		t.Errorf("container %s (restarts %d) after the restart, want %s with no restart", a.ContainerID, a.RestartCount, b.ContainerID)
	}
	nsAfter, err := env.PodNetNS(ctx, pod.Namespace, pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	if ino := inode(t, nsAfter); ino != inoBefore {
		t.Errorf("the pod's network namespace changed across the restart (inode %d, was %d): a new sandbox", ino, inoBefore)
	}
	addrs := linkAddrs(t, nsAfter)
	for ifname, ip := range want {
		if !slices.Contains(addrs[ifname], ip) {
			t.Errorf("after the restart %s has %v, want %s", ifname, addrs[ifname], ip)
		}
	}
	deleteAndRequireNoLeaks(t, ctx, pod)
}

// TestDeleteWhileAddWaitsLeavesNothing deletes a pod while containerd's CNI
// ADD for it waits for the cloud (Nova's attach of its DPDK port held for
// 8 s): once the pod is gone no port, device, checkpoint or device-info
// file is left.
func TestDeleteWhileAddWaitsLeavesNothing(t *testing.T) {
	ctx := setup(t, "realnode-delete")
	env.Cloud.SetLatency("nova.interfaces.attach", cloudsim.Latency{Fixed: 8 * time.Second})
	defer env.Cloud.SetLatency("nova.interfaces.attach", cloudsim.Latency{})
	pod, err := env.CreatePod(ctx, appPod("realnode-delete", "slow", aio.MgmtNAD+","+aio.DataPlaneNAD+"@dpdk0"))
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := env.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || p.Spec.NodeName == "" {
			return false, nil
		}
		runs, err := env.SandboxRuns(p)
		return runs > 0, err
	})
	if err != nil {
		t.Fatalf("containerd never started the pod's sandbox (%s): %v", env.Nodes[0].ContainerdLog(), err)
	}
	time.Sleep(time.Second)
	if p, err := env.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil || p.Status.Phase == corev1.PodRunning {
		t.Fatalf("the pod should still wait for its DPDK port (phase %v, %v)", p.Status.Phase, err)
	}
	deleteAndRequireNoLeaks(t, ctx, pod)
}

// runPod creates pod and waits until it runs with all its interfaces.
func runPod(t *testing.T, ctx context.Context, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created := time.Now()
	pod, err := env.CreatePod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitPodReady(ctx, pod.Namespace, pod.Name, 90*time.Second); err != nil {
		t.Fatalf("pod not ready on the real node: %v", err)
	}
	t.Logf("pod %s/%s Running with its interfaces %.1f s after its creation", pod.Namespace, pod.Name, time.Since(created).Seconds())
	return pod
}

// requireInterfaces checks that each kernel interface of the pod's
// KuryrPod has its address in the pod's network namespace, and returns
// them (ifname → IP).
func requireInterfaces(t *testing.T, ctx context.Context, pod *corev1.Pod) map[string]string {
	t.Helper()
	var kp v1alpha1.KuryrPod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: pod.Name}, &kp); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, ifc := range kp.Status.Interfaces {
		if len(ifc.IPs) > 0 {
			want[ifc.IfName] = ifc.IPs[0]
		}
	}
	if want["eth0"] == "" || want["net1"] == "" {
		t.Fatalf("KuryrPod interfaces with addresses %v, want eth0 and net1", want)
	}
	nsPath, err := env.PodNetNS(ctx, pod.Namespace, pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	addrs := linkAddrs(t, nsPath)
	for ifname, ip := range want {
		if !slices.Contains(addrs[ifname], ip) {
			t.Errorf("in the pod's network namespace (%s) %s has %v, want %s", nsPath, ifname, addrs[ifname], ip)
		}
	}
	return want
}

// deleteAndRequireNoLeaks deletes pod, waits until it is gone, and fails
// with whatever the environment still holds for it.
func deleteAndRequireNoLeaks(t *testing.T, ctx context.Context, pod *corev1.Pod) {
	t.Helper()
	if err := env.Clientset.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.Clientset.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not gone after delete: %v", pod.Namespace, pod.Name, err)
	}
	var left []string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		left = env.Leaks()
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("left behind after pod %s/%s was deleted: %s", pod.Namespace, pod.Name, strings.Join(left, "; "))
	}
}

// inode identifies a namespace file.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// linkAddrs lists the IPv4 addresses (CIDR form) of each link in the
// network namespace at path.
func linkAddrs(t *testing.T, path string) map[string][]string {
	t.Helper()
	links, err := aio.Links(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for name, l := range links {
		out[name] = l.Addrs
	}
	return out
}

// TestCNIErrorReachesPodEvents: a pod asking for a network that does not
// exist fails its sandbox on the real node, and the kubelet's
// FailedCreatePodSandBox event (what kubectl describe shows) carries
// kuryr-cni's error text naming the missing network.
func TestCNIErrorReachesPodEvents(t *testing.T) {
	const namespace = "realnode-bad"
	ctx := setup(t, namespace)
	pod, err := env.CreatePod(ctx, appPod(namespace, "orphan", "no-such-network"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	var found string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := env.Clientset.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.uid=" + string(pod.UID) + ",reason=FailedCreatePodSandBox"})
		if err != nil {
			return false, nil
		}
		msgs = msgs[:0]
		for _, e := range evs.Items {
			msgs = append(msgs, e.Message)
			if e.Source.Component == "kubelet" && strings.Contains(e.Message, `plugin type="kuryr-cni" failed (add)`) &&
				strings.Contains(e.Message, "no-such-network") {
				found = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no FailedCreatePodSandBox event from the kubelet with kuryr-cni's error naming the network; events: %q", msgs)
	}
	t.Logf("FailedCreatePodSandBox: %s", found)
	deleteAndRequireNoLeaks(t, ctx, pod)
}

// TestKuryrKubernetesStyleNAD: a NetworkAttachmentDefinition written the
// kuryr-kubernetes way (only the openstack.org/kuryr-config annotation, no
// spec.config) still gives a pod on a real node its interface.
func TestKuryrKubernetesStyleNAD(t *testing.T) {
	const namespace = "realnode-kuryr-nad"
	ctx := setup(t, namespace)
	nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: namespace,
		Annotations: map[string]string{v1alpha1.KuryrConfigAnnotation: fmt.Sprintf(`{"subnetId": %q, "driverType": %q}`,
			env.Networks.Management.ID, env.MgmtDriver)}}}
	if err := env.Client.Create(ctx, nad); err != nil {
		t.Fatal(err)
	}
	pod := runPod(t, ctx, appPod(namespace, "app", "legacy"))
	want := requireInterfaces(t, ctx, pod)
	if !env.Networks.Management.CIDR.Contains(netip.MustParsePrefix(want["net1"]).Addr()) {
		t.Errorf("net1 %s is not on the management subnet %s the annotation names", want["net1"], env.Networks.Management.CIDR)
	}
	deleteAndRequireNoLeaks(t, ctx, pod)
}
