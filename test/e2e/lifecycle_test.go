package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// checkReleaseOrder says whether the DPDK device at addr went back to
// virtio-pci (its netdev came back) before Nova detached it.
func checkReleaseOrder(t *testing.T, n *aio.Node, addr string) {
	t.Helper()
	var kinds []string
	for _, ev := range n.History() {
		if ev.Addr == addr {
			kinds = append(kinds, ev.Kind)
		}
	}
	// Kinds of the last life of the slot: attach, netdev-up (virtio),
	// netdev-down (DPDK bind), netdev-up (rebind), [netdev-down,] detach.
	last := strings.Join(kinds, " ")
	if i := strings.LastIndex(last, "attach"); i >= 0 {
		last = last[i:]
	}
	want := "attach netdev-up netdev-down netdev-up"
	if !strings.HasPrefix(last, want) || !strings.Contains(last, "detach") || strings.Index(last, "detach") < len(want) {
		t.Errorf("device %s on %s went through %q; want %q then detach (rebound to virtio-pci before the detach)", addr, n.Name, last, want)
	}
}

// Deleting a pod releases everything: its ports, subports and address pairs,
// and its DPDK device, which is rebound to virtio-pci and then detached.
func TestDeleteReleasesEverything(t *testing.T) {
	const namespace = "e2e-delete"
	ctx := setup(t, namespace, 3*time.Minute)
	pod := createPod(t, ctx, dpdkPod(namespace, "gone"))
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	pod = getPod(t, ctx, namespace, pod.Name)
	kp := kuryrPod(t, ctx, namespace, pod.Name)
	node := env.Node(pod.Spec.NodeName)
	var addr string
	var ports []string
	for _, i := range kp.Status.Interfaces {
		ports = append(ports, i.PortID)
		if i.Driver == v1alpha1.DriverNestedDPDK {
			addr = i.PCIAddress
		}
	}
	deleteAndWait(t, ctx, namespace, pod.Name)
	requireNoLeaks(t, ctx)
	for _, id := range ports {
		if _, ok := env.Cloud.Port(id); ok {
			t.Errorf("port %s still exists", id)
		}
	}
	checkReleaseOrder(t, node, addr)
}

// podsPerRound is how many pods TestPodsOnAllNodesTwiceLeaveNothing
// creates at once: five a node. (On the kubelet stand-ins it was thirty;
// each real pod is a sandbox and a container with their shims, and thirty
// of them took over three minutes a round on the shared 2-core machine.)
const podsPerRound = 15

// podsPerRound pods, five on each of the three nodes, created at once and
// deleted, twice (the second round reuses VLAN IDs, PCI slots and addresses
// the first released), all get their interfaces and leave nothing. The pods
// are placed with spec.nodeName, round-robin: under the shared machine's
// load a node's kubelet was once late with its status, the node went
// NotReady for ten seconds, and the scheduler put a round on two nodes.
func TestPodsOnAllNodesTwiceLeaveNothing(t *testing.T) {
	const namespace = "e2e-scale"
	ctx := setup(t, namespace, 8*time.Minute)
	for round := 1; round <= 2; round++ {
		var names []string
		for i := range podsPerRound {
			p := dpdkPod(namespace, fmt.Sprintf("scale-%d-%02d", round, i))
			p.Spec.NodeName = env.Nodes[i%len(env.Nodes)].Name
			names = append(names, createPod(t, ctx, p).Name)
		}
		waitReady(t, ctx, namespace, 4*time.Minute, names...)
		deleteAndWait(t, ctx, namespace, names...)
		requireNoLeaks(t, ctx)
	}
}

// A daemon that crashes between ADD and DEL (its container's process
// killed; the kubelet starts the container again in the same DaemonSet pod)
// still unplugs the pod on containerd's DEL (from its checkpoints), so the
// release completes, the device is rebound before its detach, and nothing
// leaks.
func TestDaemonRestartBetweenAddAndDel(t *testing.T) {
	const namespace = "e2e-daemon-restart"
	ctx := setup(t, namespace, 3*time.Minute)
	pod := createPod(t, ctx, dpdkPod(namespace, "survivor"))
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	pod = getPod(t, ctx, namespace, pod.Name)
	node := env.Node(pod.Spec.NodeName)
	var addr string
	for _, i := range kuryrPod(t, ctx, namespace, pod.Name).Status.Interfaces {
		if i.Driver == v1alpha1.DriverNestedDPDK {
			addr = i.PCIAddress
		}
	}
	if err := env.RestartDaemon(ctx, node, true); err != nil {
		t.Fatal(err)
	}
	deleteAndWait(t, ctx, namespace, pod.Name)
	requireNoLeaks(t, ctx)
	checkReleaseOrder(t, node, addr)
}

// A controller killed while pods are being set up (its container's process
// killed; the kubelet starts the container again in the same Deployment
// pod) picks up where it was:
// every pod gets ready with exactly one port per interface, and all of it
// is released afterwards.
func TestControllerRestartMidRun(t *testing.T) {
	const namespace = "e2e-controller-restart"
	ctx := setup(t, namespace, 5*time.Minute)
	var names []string
	for i := range 6 {
		names = append(names, createPod(t, ctx, dpdkPod(namespace, fmt.Sprintf("mid-%d", i))).Name)
	}
	time.Sleep(200 * time.Millisecond) // let the controller get some of the way
	if err := env.RestartController(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ctx, namespace, 3*time.Minute, names...)
	traces, errs := env.Traces()
	if len(errs) > 0 {
		t.Fatalf("ports not counted: %v", errs)
	}
	ports := 0
	for _, tr := range traces {
		if tr.Layer == aio.LayerPorts {
			ports++
		}
	}
	if want := 3 * len(names); ports != want {
		t.Errorf("%d ports tagged for the cluster with %d pods of 3 interfaces, want %d (a port made twice, or one missing?)", ports, len(names), want)
	}
	deleteAndWait(t, ctx, namespace, names...)
	requireNoLeaks(t, ctx)
}

// A pod asking for a NAD that does not exist gets an Event, stays out of
// Running, and causes no storm of cloud calls or CNI retries (sandboxes
// containerd was asked to run for it, each a CNI ADD).
func TestMissingNADIsReportedWithoutARetryStorm(t *testing.T) {
	const namespace = "e2e-missing-nad"
	ctx := setup(t, namespace, 2*time.Minute)
	requireNoLeaks(t, ctx) // nothing else in flight to count
	before := totalCalls()
	pod := dpdkPod(namespace, "orphan")
	pod.Annotations[v1alpha1.NetworksAnnotation] = "no-such-network"
	pod = createPod(t, ctx, pod)

	var ev corev1.Event
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := env.Clientset.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.uid=" + string(pod.UID) + ",type=Warning"})
		for _, e := range evs.Items {
			if e.Source.Component != "kubelet" && e.Reason != "FailedScheduling" {
				ev = e
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		t.Fatalf("no Warning Event from kuryr-dpdk about the missing NAD: %v", err)
	}
	if !strings.Contains(ev.Message, "no-such-network") {
		t.Errorf("event %s %q does not name the missing network", ev.Reason, ev.Message)
	}
	time.Sleep(10 * time.Second)
	if p := getPod(t, ctx, namespace, pod.Name); p.Status.Phase == corev1.PodRunning {
		kp := kuryrPod(t, ctx, namespace, pod.Name)
		t.Errorf("pod with a missing NAD is Running with IPs %v; KuryrPod spec %+v status %+v; network-status %s",
			p.Status.PodIPs, kp.Spec.Interfaces, kp.Status, p.Annotations[v1alpha1.NetworkStatusAnnotation])
	}
	if calls := totalCalls() - before; calls > 3 {
		t.Errorf("%d cloud calls for a pod whose network does not exist, want none or a few (a retry storm?)", calls)
	}
	runs, err := env.SandboxRuns(getPod(t, ctx, namespace, pod.Name))
	if err != nil {
		t.Fatal(err)
	}
	if runs == 0 {
		t.Errorf("containerd ran no sandbox for the pod: it never reached kuryr-cni")
	}
	if runs > 6 {
		t.Errorf("containerd ran %d sandboxes (CNI ADDs) in about 10 s: the kubelet's backoff, not a storm, should pace them", runs)
	}
	t.Logf("containerd ran %d sandboxes (CNI ADDs) for the pod in about 10 s", runs)
	kp := kuryrPod(t, ctx, namespace, pod.Name)
	for _, c := range kp.Status.Conditions {
		if c.Type == v1alpha1.ConditionSpecValid && c.Status != metav1.ConditionFalse {
			t.Errorf("SpecValid %s, want False", c.Status)
		}
	}
	deleteAndWait(t, ctx, namespace, pod.Name)
	requireNoLeaks(t, ctx)
}

func totalCalls() int64 {
	var n int64
	for op, c := range env.Cloud.Counts() {
		if !strings.HasPrefix(op, "keystone.") {
			n += c
		}
	}
	return n
}
