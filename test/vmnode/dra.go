package vmnode

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/dra"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmenv"
)

// draTestpmdScript is the claim pod's command: testpmd in txonly mode for
// 10 s on the device the claim's CDI device names (the PCIDEVICE_
// variable), then it stays up (the pod keeps its device). It prints its
// capabilities and /dev/vfio first, for the log.
const draTestpmdScript = `pci=$` + dra.PCIDeviceEnv + `
echo "DPDK device: $pci"
grep Cap /proc/self/status
ls -l /dev/vfio
[ -n "$pci" ] || exit 1
timeout -s INT 10 dpdk-testpmd -l 0-1 -n 1 -a $pci --file-prefix=dra --iova-mode=va -- \
	--forward-mode=txonly --stats-period 2 --nb-cores=1 --total-num-mbufs=8192
echo "testpmd exited: $?"
exec sleep 100000`

// draSleepScript is the other claim pods' command.
const draSleepScript = `echo "DPDK device: $` + dra.PCIDeviceEnv + `"; ls -l /dev/vfio; exec sleep 100000`

// claimTemplate is the ResourceClaimTemplate the claim pods use: one
// device of the deployed DeviceClass.
const claimTemplate = "dpdk-port"

// DRAPods is the DRA driver on a real node: the node VM with a vIOMMU, the
// controller with a pre-attached DPDK pool (two ports; the Nova stand-in
// hot-plugs them; the VM's hot-plug slots are counted so that the pool
// cannot grow past them), the daemon's DaemonSet with the DRA plugin on
// (auto: the kubelet's plugin registry is there) and deploy/kuryr-dpdk's
// DeviceClass and RBAC. A pod on the CNI path makes the node's DPDK pool,
// as the first nested-dpdk interface does. Then, with claims of a
// ResourceClaimTemplate of the class, allocated by the control plane's
// scheduler and prepared by the guest's kubelet:
//   - pod A, unprivileged (capabilities: all dropped, IPC_LOCK added; no
//     hostPath; hugepages as a resource), runs dpdk-testpmd on its device,
//     bound to vfio-pci, and the host counts its frames;
//   - pod B, as unprivileged: A's vfio group node is not in its /dev and
//     mknod cannot make it;
//   - pod C (a third claim, two devices) stays Pending with the
//     scheduler's Unschedulable reason;
//   - B deleted: Unprepare rebinds its device to virtio-pci and removes
//     its CDI spec; C is scheduled; the daemon is killed while the
//     kubelet's Prepare of C's claim runs (the controller's tag write for
//     it is delayed 10 s, so the Prepare waits for the owner); the
//     kubelet's retry converges: C runs with its device on vfio-pci.
func DRAPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	g := qemu.RequireGuest(t)
	cp := RequireControlPlane(t)
	testpmd := filepath.Join(g.Dir, "images", "dpdk-testpmd.oci.tar")
	kuryr := kuryrImage(t, RepoRoot(t))
	seq := runSeq.Add(1)
	cloud := vmenv.StartSimCloud(ctx, t, NodeName, true)
	sg := cloud.Sim.SeedSecurityGroup("pods").ID
	hp := &novastandin.QEMUHotplug{Match: vmenv.IsTxonlyFrame}
	hook := vmenv.NewVMHook(hp)
	hook.Attaches = make(chan vmenv.AttachEvent, 16)

	n := StartNode(ctx, t, NodeOptions{ProviderID: "openstack:///" + cloud.Server.Server.ID, Images: []string{kuryr, testpmd}, VIOMMU: true})
	t.Cleanup(func() {
		if t.Failed() {
			n.dumpDRA()
		}
	})
	n.LogBootTimings()
	hp.VM = n.VM
	cloud.Sim.SetServerHook(cloud.Server.Server.ID, hook)
	vmenv.StartController(ctx, t, cp.Admin, aio.Scheme, cloud, vmenv.ControllerOptions{
		ClusterID: fmt.Sprintf("vmdra-%d", seq), Primary: true, PodSecurityGroups: []string{sg},
		Pools:        controller.PoolOptions{NestedDPDK: controller.PoolSize{Min: 2, Max: 2, Batch: 2}},
		HotplugSlots: 3, // the pool-maker's port and two pool ports
	})
	c, err := client.New(cp.Admin, client.Options{Scheme: aio.Scheme})
	Must(t, err)
	n.applyDRAObjects(c)
	n.DeployDaemon()

	ns := fmt.Sprintf("vmdra-%d", seq)
	Must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	nadConf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"dpdkDriver":"vfio-pci"}`,
		cloud.Dataplane.ID)
	Must(t, c.Create(ctx, &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "dataplane", Namespace: ns},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: nadConf}}))

	// The pool-maker: the first nested-dpdk interface of the node makes
	// its pool and waits for the first batch; the pool refills to two
	// ready ports.
	start := time.Now()
	maker := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pool-maker", Namespace: ns, Annotations: map[string]string{v1alpha1.NetworksAnnotation: "dataplane"}},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(2)),
			Containers: []corev1.Container{{Name: "pause", Image: aio.PauseImage, ImagePullPolicy: corev1.PullNever}}},
	}
	Must(t, c.Create(ctx, maker))
	n.WaitContainerRunning(ns, maker.Name, 4*time.Minute)
	devices := n.waitSlice(2)
	t.Logf("timings: pool-maker created → running and the node's ResourceSlice lists 2 devices %v: %s",
		time.Since(start).Round(time.Millisecond), strings.Join(devices, "; "))

	Must(t, c.Create(ctx, &resourcev1.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: claimTemplate, Namespace: ns},
		Spec: resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
			Requests: []resourcev1.DeviceRequest{{Name: "port", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: dra.DriverName}}},
		}}},
	}))

	// A and B.
	a, b := claimPod(ns, "pod-a", draTestpmdScript, true), claimPod(ns, "pod-b", draSleepScript, false)
	start = time.Now()
	Must(t, c.Create(ctx, a))
	Must(t, c.Create(ctx, b))
	n.WaitContainerRunning(ns, a.Name, 4*time.Minute)
	n.WaitContainerRunning(ns, b.Name, 4*time.Minute)
	t.Logf("timings: claim pods A and B created → both running %v", time.Since(start).Round(time.Millisecond))
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(a), a))
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(b), b))
	ca, cb := n.podClaim(c, a), n.podClaim(c, b)
	pciA, portA := n.checkPrepared(ca)
	pciB, _ := n.checkPrepared(cb)

	// A's testpmd, unprivileged.
	log := n.testpmdLog(a, "app")
	// CAP_IPC_LOCK (bit 14) alone, effective and bounding.
	for _, c := range []string{"CapEff:\t0000000000004000", "CapBnd:\t0000000000004000"} {
		if !strings.Contains(log, c) {
			t.Errorf("pod A's container: no %q in its log (its capabilities are not IPC_LOCK alone)", c)
		}
	}
	t.Logf("testpmd in unprivileged pod A, log tail:\n%s", vmenv.LastLines(log, 25))
	nic, _ := hp.NIC(portA)
	if nic == nil {
		t.Fatalf("the Nova stand-in plugged no NIC for port %s", portA)
	}
	frames := nic.Matched()
	if frames == 0 {
		t.Fatalf("testpmd in unprivileged pod A on %s (vfio-pci) sent no frame the host could count", pciA)
	}
	t.Logf("host counted %d testpmd txonly frames from unprivileged pod A (vfio-pci, port %s, PCI %s; %d frames in all)",
		frames, portA, pciA, nic.Frames())

	// Isolation: A's vfio group in B's container.
	group := strings.TrimSpace(n.Sh(fmt.Sprintf(`basename "$(readlink /sys/bus/pci/devices/%s/iommu_group)"`, pciA)))
	groupB := strings.TrimSpace(n.Sh(fmt.Sprintf(`basename "$(readlink /sys/bus/pci/devices/%s/iommu_group)"`, pciB)))
	majmin := strings.TrimSpace(n.Sh("stat -c '%t %T' /dev/vfio/" + group))
	var maj, minor int
	if _, err := fmt.Sscanf(majmin, "%x %x", &maj, &minor); err != nil {
		t.Fatalf("/dev/vfio/%s in the guest: %q: %v", group, majmin, err)
	}
	cid := strings.TrimPrefix(b.Status.ContainerStatuses[0].ContainerID, "containerd://")
	res, err := n.VM.Agent.Run(ctx, fmt.Sprintf(`/usr/bin/ctr -n k8s.io tasks exec --exec-id isolation-%d %s /bin/sh -c '
echo "B sees: $(ls /dev/vfio | tr "\n" " ")"
if [ -e /dev/vfio/%s ]; then echo "A group node present"; exit 2; fi
if mknod /dev/vfio/%s c %d %d; then echo "mknod made A group node"; exit 3; fi
[ -e /dev/vfio/%s ] && exit 4
[ -e /dev/vfio/%s ] || exit 5
echo "mknod refused"'`, seq, cid, group, group, maj, minor, group, groupB))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in pod B's container (own group %s), pod A's group %s (char %d:%d): exit %d, %s%s",
		groupB, group, maj, minor, res.ExitCode, res.Stdout, res.Stderr)
	if res.ExitCode != 0 {
		t.Fatalf("pod B's container: A's device node /dev/vfio/%s present or creatable, or B's own /dev/vfio/%s missing (exit %d)", group, groupB, res.ExitCode)
	}

	// C: a third claim, two devices.
	cpod := claimPod(ns, "pod-c", draSleepScript, false)
	start = time.Now()
	Must(t, c.Create(ctx, cpod))
	reason := n.waitUnschedulable(c, cpod)
	t.Logf("timings: pod C created → Unschedulable %v: %s", time.Since(start).Round(time.Millisecond), reason)
	time.Sleep(5 * time.Second)
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(cpod), cpod))
	if cpod.Spec.NodeName != "" || cpod.Status.Phase != corev1.PodPending {
		t.Fatalf("pod C with no free device: node %q, phase %s", cpod.Spec.NodeName, cpod.Status.Phase)
	}

	// B deleted: Unprepare, C scheduled, the daemon killed during C's
	// Prepare.
	cloud.Sim.SetLatency("neutron.ports.tags.replace", cloudsim.Latency{Fixed: 10 * time.Second})
	deleted := time.Now()
	Must(t, c.Delete(ctx, b))
	var drv string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		drv = strings.TrimSpace(n.Sh(fmt.Sprintf(`basename "$(readlink /sys/bus/pci/devices/%s/driver)" 2>/dev/null; true`, pciB)))
		return drv == "virtio-pci", nil
	})
	if err != nil {
		t.Fatalf("pod B's device %s after its deletion: driver %q, want virtio-pci: %v", pciB, drv, err)
	}
	if out := n.Sh(fmt.Sprintf("ls /var/run/cdi/dpdk.kuryr-dpdk.io-claim-%s.json 2>&1 || true", cb.UID)); !strings.Contains(out, "No such file") {
		t.Errorf("claim %s's CDI spec after Unprepare: %s", cb.UID, out)
	}
	t.Logf("timings: pod B deleted → Unprepare rebound its device %s to virtio-pci %v", pciB, time.Since(deleted).Round(time.Millisecond))

	cc := n.killDaemonInPrepare(c, cpod)
	cloud.Sim.SetLatency("neutron.ports.tags.replace", cloudsim.Latency{})
	running := n.WaitContainerRunning(ns, cpod.Name, 4*time.Minute)
	t.Logf("timings: pod B deleted → pod C running %v (through the daemon's kill)", running.Sub(deleted).Round(time.Millisecond))
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(cc), cc))
	n.checkPrepared(cc)
	out := n.Sh(`grep -h '"Prepared claim"\|Prepared claim' /var/log/pods/kuryr-dpdk_kuryr-daemon-*/daemon/*.log | grep ` + string(cc.UID) + ` | tail -n 1`)
	// The kill found no such line for this claim: it is the restarted
	// daemon's.
	if strings.TrimSpace(out) == "" {
		t.Fatalf("pod C runs, yet no daemon logged \"Prepared claim\" for its claim %s", cc.UID)
	}
	t.Logf("the restarted daemon prepared pod C's claim: %s", strings.TrimSpace(out))
}

// claimPod is an unprivileged pod of the dpdk-testpmd image holding one
// claim of claimTemplate: every capability dropped but IPC_LOCK (DPDK
// locks its memory for vfio's DMA mappings), no privilege escalation, no
// hostPath; with hugepages, 256 MiB of 2 MiB pages as a resource and a
// HugePages emptyDir on /dev/hugepages.
func claimPod(ns, name, script string, hugepages bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(2)),
			ResourceClaims:                []corev1.PodResourceClaim{{Name: "port", ResourceClaimTemplateName: ptr.To(claimTemplate)}},
			Containers: []corev1.Container{{
				Name: "app", Image: testpmdImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/sh", "-c", script},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(false), AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"IPC_LOCK"}}},
				Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "port"}}},
			}},
		},
	}
	if hugepages {
		q := resource.MustParse("256Mi")
		ctr := &p.Spec.Containers[0]
		ctr.Resources.Requests = corev1.ResourceList{"hugepages-2Mi": q, corev1.ResourceMemory: resource.MustParse("128Mi"), corev1.ResourceCPU: resource.MustParse("1")}
		ctr.Resources.Limits = corev1.ResourceList{"hugepages-2Mi": q, corev1.ResourceMemory: resource.MustParse("512Mi")}
		ctr.VolumeMounts = []corev1.VolumeMount{{Name: "hugepages", MountPath: "/dev/hugepages"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "hugepages", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}}}
	}
	return p
}

// applyDRAObjects creates deploy/kuryr-dpdk's DRA objects (dra.yaml: the
// DeviceClass and the daemon's DRA RBAC); the control plane has applied
// rbac.yaml and admission.yaml.
func (n *Node) applyDRAObjects(c client.Client) {
	n.t.Helper()
	objs, err := testenv.Kustomize(filepath.Join(RepoRoot(n.t), "deploy", "kuryr-dpdk"))
	Must(n.t, err)
	made := 0
	for _, o := range objs {
		switch o.GetKind() + "/" + o.GetName() {
		case "DeviceClass/" + dra.DriverName, "ClusterRole/kuryr-daemon-dra", "ClusterRoleBinding/kuryr-daemon-dra":
			if err := c.Create(n.ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				n.t.Fatal(err)
			}
			made++
		}
	}
	if made != 3 {
		n.t.Fatalf("deploy/kuryr-dpdk renders %d of the DeviceClass and the DRA ClusterRole and binding", made)
	}
}

// waitSlice waits until the node's ResourceSlices of the driver list want
// devices and returns them with their PCI address and driver list.
func (n *Node) waitSlice(want int) []string {
	n.t.Helper()
	var got []string
	err := wait.PollUntilContextTimeout(n.ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		sl, err := n.CS.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.driver=" + dra.DriverName})
		if err != nil {
			return false, nil
		}
		got = nil
		for _, s := range sl.Items {
			if s.Spec.NodeName == nil || *s.Spec.NodeName != NodeName {
				continue
			}
			for _, d := range s.Spec.Devices {
				attr := func(k resourcev1.QualifiedName) string {
					v := d.Attributes[k]
					switch {
					case v.StringValue != nil:
						return *v.StringValue
					case v.BoolValue != nil:
						return fmt.Sprint(*v.BoolValue)
					}
					return ""
				}
				got = append(got, fmt.Sprintf("%s pciAddress=%s dpdkDrivers=%s iommu=%s", d.Name, attr("pciAddress"), attr("dpdkDrivers"), attr("iommu")))
			}
		}
		return len(got) == want, nil
	})
	if err != nil {
		n.t.Fatalf("the ResourceSlices of %s on %s list %v, want %d devices: %v", dra.DriverName, NodeName, got, want, err)
	}
	return got
}

// podClaim returns the ResourceClaim made for pod's claim "port".
func (n *Node) podClaim(c client.Client, pod *corev1.Pod) *resourcev1.ResourceClaim {
	n.t.Helper()
	var name string
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return false, nil
		}
		for _, s := range pod.Status.ResourceClaimStatuses {
			if s.Name == "port" && s.ResourceClaimName != nil {
				name = *s.ResourceClaimName
			}
		}
		return name != "", nil
	})
	if err != nil {
		n.t.Fatalf("pod %s has no ResourceClaim for its claim port: %v", pod.Name, err)
	}
	var claim resourcev1.ResourceClaim
	Must(n.t, c.Get(n.ctx, client.ObjectKey{Namespace: pod.Namespace, Name: name}, &claim))
	return &claim
}

// checkPrepared checks a prepared claim: allocated on the node by the
// scheduler, its device status written by the driver (MAC, PCI address,
// port, driver vfio-pci, not privileged), its CDI spec in the guest, and
// its device bound to vfio-pci; it logs the status and the spec and
// returns the PCI address and the port ID.
func (n *Node) checkPrepared(claim *resourcev1.ResourceClaim) (string, string) {
	t := n.t
	t.Helper()
	var data struct {
		PCIAddress string `json:"pciAddress"`
		PortID     string `json:"portID"`
		Driver     string `json:"driver"`
		Privileged bool   `json:"privileged"`
	}
	var st resourcev1.AllocatedDeviceStatus
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		c, err := n.CS.ResourceV1().ResourceClaims(claim.Namespace).Get(ctx, claim.Name, metav1.GetOptions{})
		if err != nil || len(c.Status.Devices) != 1 || c.Status.Devices[0].Data == nil {
			return false, nil
		}
		*claim = *c
		st = c.Status.Devices[0]
		return json.Unmarshal(st.Data.Raw, &data) == nil, nil
	})
	if err != nil {
		t.Fatalf("claim %s: no device status: %v", claim.Name, err)
	}
	al := claim.Status.Allocation
	if al == nil || len(al.Devices.Results) != 1 || al.Devices.Results[0].Pool != NodeName ||
		al.Devices.Results[0].Device != v1alpha1.DRADeviceNamePrefix+data.PortID || data.Driver != "vfio-pci" || data.Privileged {
		t.Fatalf("claim %s: allocation %+v, device data %+v", claim.Name, al, data)
	}
	status, _ := json.Marshal(st)
	t.Logf("claim %s (%s) status.devices[0]: %s", claim.Name, claim.UID, status)
	spec := n.Sh(fmt.Sprintf("cat /var/run/cdi/dpdk.kuryr-dpdk.io-claim-%s.json", claim.UID))
	t.Logf("CDI spec of claim %s in the guest: %s", claim.Name, strings.TrimSpace(spec))
	drv := strings.TrimSpace(n.Sh(fmt.Sprintf(`basename "$(readlink /sys/bus/pci/devices/%s/driver)"`, data.PCIAddress)))
	if drv != "vfio-pci" {
		t.Fatalf("claim %s's device %s is bound to %q, want vfio-pci", claim.Name, data.PCIAddress, drv)
	}
	return data.PCIAddress, data.PortID
}

// waitUnschedulable waits until the scheduler reports pod unschedulable
// and returns its message.
func (n *Node) waitUnschedulable(c client.Client, pod *corev1.Pod) string {
	n.t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return false, nil
		}
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				msg = cond.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		n.t.Fatalf("pod %s not reported Unschedulable (node %q): %v", pod.Name, pod.Spec.NodeName, err)
	}
	return msg
}

// killDaemonInPrepare waits until the daemon has logged the start of a
// Prepare of pod's claim and not its end, SIGKILLs the daemon in the same
// guest script that checks it, and returns the claim.
func (n *Node) killDaemonInPrepare(c client.Client, pod *corev1.Pod) *resourcev1.ResourceClaim {
	t := n.t
	t.Helper()
	claim := n.podClaim(c, pod)
	uid := string(claim.UID)
	logs := `/var/log/pods/kuryr-dpdk_kuryr-daemon-*/daemon/*.log`
	check := fmt.Sprintf(`grep -h 'Preparing claim' %[1]s | grep -q %[2]s || exit 1
grep -h 'Prepared claim' %[1]s | grep -q %[2]s && exit 2
d=$(pidof kuryr-daemon) || exit 1
kill -9 $d
echo "kuryr-daemon $d killed (SIGKILL) in the Prepare of claim %[2]s: $(grep -h 'Preparing claim' %[1]s | grep %[2]s | tail -n 1)"`, logs, uid)
	var out string
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		res, err := n.VM.Agent.Run(ctx, check)
		if err != nil {
			return false, nil
		}
		if res.ExitCode == 2 {
			return false, fmt.Errorf("the Prepare of claim %s ended before the kill", uid)
		}
		out = res.Stdout
		return res.ExitCode == 0, nil
	})
	if err != nil {
		t.Fatalf("no Prepare of claim %s in flight to kill the daemon in: %v", uid, err)
	}
	t.Logf("mid-Prepare: %s", strings.TrimSpace(out))
	return claim
}

// dumpDRA logs what a failed DRA step needs: the KuryrNode's DPDK
// devices and pools, and the tail of the daemon's log.
func (n *Node) dumpDRA() {
	var kn v1alpha1.KuryrNode
	c, err := client.New(n.cp.Admin, client.Options{Scheme: aio.Scheme})
	if err == nil {
		err = c.Get(context.Background(), client.ObjectKey{Name: NodeName}, &kn)
	}
	st, _ := json.Marshal(kn.Status)
	n.t.Logf("KuryrNode %s status (%v): %s", NodeName, err, st)
	res, err := n.VM.RunForDiagnostics(`tail -n 60 /var/log/pods/kuryr-dpdk_kuryr-daemon-*/daemon/*.log`)
	if err != nil {
		n.t.Logf("daemon log tail: %v", err)
		return
	}
	n.t.Logf("daemon log tail:\n%s%s", res.Stdout, res.Stderr)
}
