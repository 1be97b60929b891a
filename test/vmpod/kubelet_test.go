package vmpod

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// TestKubeletRegistersNodeAndRunsHostNetworkPod boots the node VM with
// containerd and the kubelet, and checks that the kubelet registered the
// Node with the host's API server through the restricted forward (kubelet
// v1.37.2, containerd v2.4.2, the management NIC's address, the huge pages
// the boot hook reserved, the providerID), and that a hostNetwork pod
// scheduled by the host's kube-scheduler runs there: containerd made the
// sandbox and runc the container, in the guest whose root is an initramfs.
func TestKubeletRegistersNodeAndRunsHostNetworkPod(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	n := startNode(ctx, t, nodeOptions{ProviderID: "openstack:///node-vm-1"})
	n.logBootTimings()

	node, err := n.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := node.Status.NodeInfo
	if info.KubeletVersion != "v1.37.2" || info.ContainerRuntimeVersion != "containerd://2.4.2" {
		t.Errorf("Node %s: kubelet %q, runtime %q; want v1.37.2 and containerd://2.4.2", nodeName, info.KubeletVersion, info.ContainerRuntimeVersion)
	}
	if node.Spec.ProviderID != "openstack:///node-vm-1" {
		t.Errorf("Node %s: providerID %q", nodeName, node.Spec.ProviderID)
	}
	var ip string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	if ip != guestNodeIP {
		t.Errorf("Node %s: InternalIP %q, want %s (%v)", nodeName, ip, guestNodeIP, node.Status.Addresses)
	}
	// The capacity follows the kubelet's first status update.
	hp := waitCapacity(ctx, t, n, "hugepages-2Mi")
	if want := resource.MustParse("512Mi"); hp.Cmp(want) != 0 {
		t.Errorf("Node %s: hugepages-2Mi capacity %s, want %s (256 pages reserved at boot)", nodeName, hp.String(), want.String())
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hostnet", Namespace: "default"},
		Spec: corev1.PodSpec{
			HostNetwork: true, NodeSelector: map[string]string{"kubernetes.io/hostname": nodeName},
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers:                    []corev1.Container{{Name: "pause", Image: aio.PauseImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
	created := time.Now()
	if _, err := n.cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.cs.CoreV1().Pods("default").Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	})
	running := n.waitContainerRunning("default", pod.Name, 3*time.Minute)
	t.Logf("timings: pod created → container running %v", running.Sub(created).Round(time.Millisecond))
	out := n.sh("/usr/bin/ctr -n k8s.io containers ls -q | wc -l; free -m | sed -n 2p")
	t.Logf("guest: containers, memory (total used free ...): %s", strings.Join(strings.Fields(out), " "))
}

// waitCapacity waits until the Node reports a capacity of resource name
// and returns it.
func waitCapacity(ctx context.Context, t *testing.T, n *guestNode, name corev1.ResourceName) resource.Quantity {
	t.Helper()
	var q resource.Quantity
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := n.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		var ok bool
		q, ok = node.Status.Capacity[name]
		return ok, nil
	})
	if err != nil {
		t.Fatalf("Node %s reports no %s capacity: %v", nodeName, name, err)
	}
	return q
}

// waitContainerRunning waits until every container of the pod runs and
// returns when the test saw it.
func (n *guestNode) waitContainerRunning(namespace, name string, bound time.Duration) time.Time {
	n.t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(n.ctx, 100*time.Millisecond, bound, true, func(ctx context.Context) (bool, error) {
		pod, err := n.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("phase %s, node %q", pod.Status.Phase, pod.Spec.NodeName)
		if len(pod.Status.ContainerStatuses) != len(pod.Spec.Containers) {
			return false, nil
		}
		for _, c := range pod.Status.ContainerStatuses {
			if c.State.Running == nil {
				last += fmt.Sprintf(", container %s: %+v", c.Name, c.State)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		ev, _ := n.cs.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		var evs []string
		if ev != nil {
			for _, e := range ev.Items {
				evs = append(evs, e.Reason+": "+e.Message)
			}
		}
		n.t.Fatalf("pod %s/%s not running (%s; events %q): %v", namespace, name, last, evs, err)
	}
	return time.Now()
}
