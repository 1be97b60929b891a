package vmnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmenv"
)

// testpmdImage is the dpdk-testpmd image of the guest build
// (hack/vm/build-guest.sh writes it into <guest>/images).
const testpmdImage = "kuryr-dpdk/dpdk-testpmd:dev"

var runSeq atomic.Int64

// testpmdScript is the DPDK container's command: it finds the device the
// CNI bound to a DPDK driver (the only one on the node), runs testpmd in
// txonly mode on it for 10 s, and then stays up (the pod keeps its device).
const testpmdScript = `pci=
for d in /sys/bus/pci/drivers/uio_pci_generic/0000:* /sys/bus/pci/drivers/vfio-pci/0000:*; do
	[ -e "$d" ] && pci=${d##*/}
done
echo "DPDK device: $pci"
[ -n "$pci" ] || exit 1
timeout -s INT 10 dpdk-testpmd -l 0-1 -n 1 -a $pci --file-prefix=vmpod -- \
	--forward-mode=txonly --stats-period 2 --nb-cores=1 --total-num-mbufs=8192
echo "testpmd exited: $?"
exec sleep 100000`

// DPDKPod is the user's case on a real node. The node VM boots with the
// kubelet and containerd and registers (CheckRegistration); the kuryr-daemon
// DaemonSet's pod (hostNetwork, so a container that runc starts in a guest
// whose root is an initramfs) makes the Node Ready. Then a DPDK container from the
// dpdk-testpmd image, started by the kubelet in the node VM (with a vIOMMU
// when viommu), asks for the nested-dpdk network (dpdkDriver driver) by
// annotation; containerd calls kuryr-cni (the primary CNI, installed by the
// kuryr-daemon DaemonSet's pod), which gives it eth0 as a VLAN
// subinterface of the VM's NIC and net1 as a hot-plugged virtio-net device
// bound to driver; dpdk-testpmd in the container sends frames that the host
// counts. With killMidAdd, Nova's attach is held while containerd's first
// ADD runs (the daemon then waits for the pod's interfaces), the daemon's
// pod is killed in the middle of it, and the kubelet's retry converges once
// the DaemonSet's pod is back and the attach goes on.
func DPDKPod(t *testing.T, viommu bool, driver string, killMidAdd bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	g := qemu.RequireGuest(t)
	cp := RequireControlPlane(t)
	testpmd := filepath.Join(g.Dir, "images", "dpdk-testpmd.oci.tar")
	if _, err := os.Stat(testpmd); err != nil {
		t.Fatalf("the guest in %s has no dpdk-testpmd image: rebuild it with hack/vm/build-guest.sh (%v)", g.Dir, err)
	}
	kuryr := kuryrImage(t, RepoRoot(t))
	seq := runSeq.Add(1)
	cloud := vmenv.StartSimCloud(ctx, t, NodeName, true)
	hp := &novastandin.QEMUHotplug{Match: vmenv.IsTxonlyFrame}
	hook := vmenv.NewVMHook(hp)

	n := StartNode(ctx, t, NodeOptions{ProviderID: "openstack:///" + cloud.Server.Server.ID, Images: []string{kuryr, testpmd}, VIOMMU: viommu})
	n.LogBootTimings()
	n.CheckRegistration("openstack:///" + cloud.Server.Server.ID)
	hp.VM = n.VM
	cloud.Sim.SetServerHook(cloud.Server.Server.ID, hook)
	vmenv.StartController(ctx, t, cp.Admin, aio.Scheme, cloud, vmenv.ControllerOptions{ClusterID: fmt.Sprintf("vmpod-%d", seq), Primary: true})
	n.DeployDaemon()

	c, err := client.New(cp.Admin, client.Options{Scheme: aio.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("vmpod-%d", seq)
	Must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	nadConf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"dpdkDriver":%q}`,
		cloud.Dataplane.ID, driver)
	Must(t, c.Create(ctx, &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "dataplane", Namespace: ns},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: nadConf}}))

	hugepages := resource.MustParse("256Mi")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vnf", Namespace: ns, Annotations: map[string]string{v1alpha1.NetworksAnnotation: "dataplane"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(2)),
			Containers: []corev1.Container{{
				Name: "testpmd", Image: testpmdImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", testpmdScript},
				// The device nodes (/dev/uio*, /dev/vfio/*) and sysfs; the DRA
				// issue takes privileged away.
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
				Resources: corev1.ResourceRequirements{
					// A whole CPU's weight for the polling lcore.
					Requests: corev1.ResourceList{"hugepages-2Mi": hugepages, corev1.ResourceMemory: resource.MustParse("128Mi"),
						corev1.ResourceCPU: resource.MustParse("1")},
					Limits: corev1.ResourceList{"hugepages-2Mi": hugepages, corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "hugepages", MountPath: "/dev/hugepages"}},
			}},
			Volumes: []corev1.Volume{{Name: "hugepages", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}}},
		},
	}
	if killMidAdd {
		hook.Gate = make(chan struct{})
	}
	created := time.Now()
	Must(t, c.Create(ctx, pod))
	if killMidAdd {
		n.killDaemonMidAdd(pod)
		close(hook.Gate)
	}
	ev := hook.WaitAttach(ctx, t)
	running := n.WaitContainerRunning(ns, pod.Name, 4*time.Minute)
	t.Logf("timings: pod created → Nova's attach reaches the VM %v, device_add done %v, container running %v",
		ev.Called.Sub(created).Round(time.Millisecond), ev.DeviceAdded.Sub(created).Round(time.Millisecond),
		running.Sub(created).Round(time.Millisecond))

	// eth0: kuryr's nested-vlan on the VM's NIC, with the pod's address.
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(pod), pod))
	netns, link := n.PodNetNS(pod.Status.PodIP)
	if !strings.Contains(link, "vlan protocol 802.1Q") {
		t.Errorf("eth0 of pod %s (netns %s) is not an 802.1Q VLAN link: %s", pod.Name, netns, link)
	}
	t.Logf("pod IP %s; eth0 in %s: %s", pod.Status.PodIP, netns, link)
	// containerd ran kuryr-cni for the sandbox: its CNI result cache names
	// the sandbox, and the daemon logged the ADD of that container.
	out := n.Sh(`ls /var/lib/cni/results; grep -h '"plugged"' /var/log/pods/kuryr-dpdk_kuryr-daemon-*/daemon/*.log | tail -n 3`)
	t.Logf("guest: containerd's CNI results and the daemon's ADDs:\n%s", out)
	sandbox := ""
	for _, f := range strings.Fields(out) {
		if id, ok := strings.CutPrefix(f, "kuryr-"); ok && strings.HasSuffix(id, "-eth0") {
			sandbox = strings.TrimSuffix(id, "-eth0")
		}
	}
	if sandbox == "" || !strings.Contains(out, `container="`+sandbox+`"`) {
		t.Errorf("no CNI result of network kuryr from containerd matched by a daemon ADD (sandbox %q)", sandbox)
	}
	t.Logf("containerd called kuryr-cni for sandbox %s (CNI result kuryr-%s-eth0), and the daemon plugged that container", sandbox, sandbox)

	// net1: the hot-plugged device, bound to the network's driver.
	var kp v1alpha1.KuryrPod
	Must(t, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod.Name}, &kp))
	var pci string
	for _, st := range kp.Status.Interfaces {
		if st.IfName == "net1" {
			pci = st.PCIAddress
		}
	}
	bound := strings.TrimSpace(n.Sh(fmt.Sprintf(`basename "$(readlink /sys/bus/pci/devices/%s/driver)"`, pci)))
	if pci == "" || bound != driver {
		t.Fatalf("net1 of pod %s: PCI %q bound to %q, want %s", pod.Name, pci, bound, driver)
	}
	nic, _ := hp.NIC(ev.Port.ID)

	// testpmd in the container: wait for it to finish its 10 s.
	log := n.testpmdLog(pod, "testpmd")
	t.Logf("testpmd (%s) in the container, log tail:\n%s", driver, vmenv.LastLines(log, 20))
	frames := nic.Matched()
	if frames == 0 {
		t.Fatalf("testpmd in the container on %s (%s) sent no frame the host could count", pci, driver)
	}
	t.Logf("host counted %d testpmd txonly frames from the container (%s, port %s, PCI %s; %d frames in all)",
		frames, driver, ev.Port.ID, pci, nic.Frames())
	t.Logf("guest memory (MiB: total used free shared buff/cache available): %s",
		strings.Join(strings.Fields(n.Sh("free -m | sed -n 2p"))[1:], " "))

	// The kubelet restarted (containerd and the pod keep running): the new
	// kubelet syncs the pod and leaves its sandbox (the CNI results of
	// containerd, one per sandbox and network), container and device as
	// they are.
	sandboxes := func() string { return n.Sh("ls /var/lib/cni/results") }
	sandboxesBefore, containerBefore := sandboxes(), pod.Status.ContainerStatuses[0].ContainerID
	restarted := time.Now()
	n.RestartKubelet(ns + "/" + pod.Name)
	time.Sleep(5 * time.Second) // the new kubelet's first sync of the pod
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(pod), pod))
	cs := pod.Status.ContainerStatuses
	if after := sandboxes(); after != sandboxesBefore || len(cs) != 1 || cs[0].ContainerID != containerBefore || cs[0].State.Running == nil || cs[0].RestartCount != 0 {
		t.Errorf("after the kubelet's restart: CNI results %q (before %q), container %+v (before %s)", after, sandboxesBefore, cs, containerBefore)
	}
	if drv := strings.TrimSpace(n.Sh(fmt.Sprintf(`basename "$(readlink /sys/bus/pci/devices/%s/driver)"`, pci))); drv != driver {
		t.Errorf("after the kubelet's restart the pod's device %s is bound to %q, want %s", pci, drv, driver)
	}
	t.Logf("timings: kubelet restarted and synced the pod in %v; the pod kept its container %s and its device %s (%s)",
		time.Since(restarted).Round(time.Millisecond), containerBefore, pci, driver)

	// Deleting the pod: the kubelet stops the container, containerd's CNI
	// DEL makes the daemon rebind the device to virtio-pci, and the
	// controller has Nova detach it. A guest watcher notes the driver
	// changes until the device has left.
	watch := make(chan string, 1)
	go func() {
		res, err := n.VM.Agent.Run(ctx, fmt.Sprintf(`d=/sys/bus/pci/devices/%s
last=
i=0
while [ -e $d ]; do
	drv=$(basename "$(readlink $d/driver)" 2>/dev/null)
	[ "$drv" = "$last" ] || { echo "driver $drv"; last=$drv; }
	i=$((i+1)); [ $i -lt 30000 ] || { echo "still there after 300 s"; exit 1; }
	sleep 0.01
done
echo gone`, pci))
		if err != nil {
			watch <- err.Error()
			return
		}
		watch <- res.Stdout + res.Stderr
	}()
	time.Sleep(time.Second) // the watcher runs before the deletion
	deleted := time.Now()
	Must(t, c.Delete(ctx, pod))
	var detached time.Time
	select {
	case p := <-hook.Detaches:
		detached = time.Now()
		if p.ID != ev.Port.ID {
			t.Fatalf("Nova detached port %s, want %s", p.ID, ev.Port.ID)
		}
	case <-ctx.Done():
		t.Fatal("Nova never detached the pod's port")
	}
	seen := <-watch
	t.Logf("timings: pod deleted → device_del done %v; the device in the guest: %s",
		detached.Sub(deleted).Round(time.Millisecond), strings.Join(strings.Fields(seen), " "))
	if !strings.Contains(seen, "driver virtio-pci\n") || !strings.HasSuffix(strings.TrimSpace(seen), "gone") {
		t.Errorf("the device %s was not rebound to virtio-pci before it left the guest: %q", pci, seen)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		left := cloud.DataplanePorts()
		last = fmt.Sprintf("pod: %v, ports: %+v", err, left)
		return apierrors.IsNotFound(err) && len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("the pod gone and no port left on the dataplane network: %s: %v", last, err)
	}
}

// testpmdLog waits (up to 90 s) until the log of the pod's container
// shows "testpmd exited" and returns it.
func (n *Node) testpmdLog(pod *corev1.Pod, container string) string {
	n.t.Helper()
	logPath := fmt.Sprintf("/var/log/pods/%s_%s_%s/%s/0.log", pod.Namespace, pod.Name, pod.UID, container)
	var log string
	deadline := time.Now().Add(90 * time.Second)
	for {
		log = n.Sh("cat " + logPath + " 2>/dev/null || true")
		if strings.Contains(log, "testpmd exited") || time.Now().After(deadline) {
			return log
		}
		time.Sleep(2 * time.Second)
	}
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// killDaemonMidAdd SIGKILLs the daemon while containerd's ADD for pod is in
// flight (vmenv.KillDaemonMidAdd: Nova's attach is held, so the ADD cannot
// complete), and waits until the kubelet has reported the failed sandbox
// and restarted the daemon's container.
func (n *Node) killDaemonMidAdd(pod *corev1.Pod) {
	t := n.t
	t.Helper()
	out := vmenv.KillDaemonMidAdd(n.ctx, t, n.VM, pod.Name)
	killed := time.Now()
	t.Logf("mid-ADD (Nova's attach held, so the ADD cannot complete): %s", out)
	var last string
	err := wait.PollUntilContextTimeout(n.ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		evs, err := n.CS.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
		if err != nil {
			return false, nil
		}
		failed := false
		for _, e := range evs.Items {
			if e.Reason == "FailedCreatePodSandBox" {
				failed, last = true, e.Message
			}
		}
		pods, err := n.CS.CoreV1().Pods("kuryr-dpdk").List(ctx, metav1.ListOptions{LabelSelector: "app=kuryr-daemon"})
		if err != nil || len(pods.Items) != 1 || len(pods.Items[0].Status.ContainerStatuses) != 1 {
			return false, nil
		}
		cs := pods.Items[0].Status.ContainerStatuses[0]
		return failed && cs.RestartCount > 0 && cs.State.Running != nil, nil
	})
	if err != nil {
		t.Fatalf("after the kill: the failed sandbox not reported, or the daemon's container not restarted (last event %q): %v", last, err)
	}
	t.Logf("timings: daemon killed → the kubelet reported the failed ADD and restarted the daemon's container %v; the failed ADD: %s",
		time.Since(killed).Round(time.Millisecond), last)
}
