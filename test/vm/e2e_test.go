package vm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmenv"
)

// TestEndToEndUIO is the whole nested-DPDK path on a real node VM: the
// controller on the host creates the port and has (simulated) Nova attach
// it, which hot-plugs a virtio-net-pci device into the QEMU guest; the
// guest's kuryr-daemon, reaching the host's kube-apiserver through
// guestfwd, binds it to uio_pci_generic on a CNI ADD that the test runs in
// the guest as a runtime (or Multus) would; testpmd sends packets from the
// pod's namespace and the host counts them; DEL gives the netdev back; the
// pod's deletion unplugs the device and leaves no port in the cloud.
func TestEndToEndUIO(t *testing.T) {
	endToEnd(t, false, v1alpha1.DPDKDriverUIOPCIGeneric)
}

// TestEndToEndVFIOWithVIOMMU is the same with a virtual IOMMU in the VM and
// the network asking for vfio-pci. (The daemon killed mid-ADD, the ADD
// failing with code 11 and the retry converging, is test/vmpod/vfio's
// TestDPDKPodVFIOWithVIOMMU, where a real kubelet makes the retries.)
func TestEndToEndVFIOWithVIOMMU(t *testing.T) {
	endToEnd(t, true, v1alpha1.DPDKDriverVFIOPCI)
}

var e2eSeq atomic.Int64

const podNetns = "/var/run/netns/pod1"

// e2e is one end-to-end run.
type e2e struct {
	t      *testing.T
	ctx    context.Context
	vm     *qemu.VM
	c      client.Client
	ns     string
	pod    *corev1.Pod
	conf   map[string]any
	driver string
}

func endToEnd(t *testing.T, viommu bool, driver string) {
	g := requireGuest(t)
	env := requireAPIServer(t)
	binDir := nodeBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	n := e2eSeq.Add(1)
	node := fmt.Sprintf("vm-node-%d", n)
	e := &e2e{t: t, ctx: ctx, ns: fmt.Sprintf("vm-e2e-%d", n), driver: driver}
	cloud := vmenv.StartSimCloud(ctx, t, node, false)
	kubeconfig, apiHost, err := guestKubeconfig(env)
	if err != nil {
		t.Fatal(err)
	}
	hp := &novastandin.QEMUHotplug{Match: vmenv.IsTxonlyFrame}
	hook := vmenv.NewVMHook(hp)
	hook.Gate = make(chan struct{})
	e.vm = startVM(t, qemu.Options{
		Kernel: g.Kernel, Initrd: g.Initrd, ExtraInitrd: []string{guestFiles(t, binDir, node, kubeconfig)}, VIOMMU: viommu,
		Mgmt: &qemu.Mgmt{GuestFwd: []qemu.GuestFwd{{Guest: guestAPIAddr, Host: apiHost}}},
	})
	t.Cleanup(func() {
		if t.Failed() {
			res, err := e.vm.RunForDiagnostics("tail -n 60 /var/log/kuryr-daemon.log")
			if err != nil {
				t.Logf("kuryr-daemon log: %v", err)
				return
			}
			t.Logf("kuryr-daemon log (tail):\n%s", res.Stdout)
		}
	})
	hp.VM = e.vm
	cloud.Sim.SetServerHook(cloud.Server.Server.ID, hook)

	// The Kubernetes side: namespace, node (providerID = the seeded server),
	// the nested-dpdk network, the controller.
	e.c, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e.must(e.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}))
	kn := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: corev1.NodeSpec{ProviderID: "openstack:///" + cloud.Server.Server.ID}}
	e.must(e.c.Create(ctx, kn))
	t.Cleanup(func() { _ = e.c.Delete(context.Background(), kn) })
	kn.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: cloud.Server.ParentPort.FixedIPs[0].IPAddress}}
	e.must(e.c.Status().Update(ctx, kn))
	nadConf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"dpdkDriver":%q}`,
		cloud.Dataplane.ID, driver)
	e.must(e.c.Create(ctx, &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "dataplane", Namespace: e.ns},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: nadConf}}))
	e.must(json.Unmarshal([]byte(nadConf), &e.conf))
	vmenv.StartController(ctx, t, env.Config, scheme, cloud, vmenv.ControllerOptions{ClusterID: fmt.Sprintf("vm-cluster-%d", n)})

	// The guest: the daemon was started by the boot hook; the pod's network
	// namespace is what the runtime makes before calling CNI.
	e.waitDaemonReady()
	e.sh("/bin/ip netns add pod1")

	// The pod's creation makes the controller create the port and Nova
	// attach it; meanwhile the runtime's ADD starts in the guest (it waits
	// for the pod's interfaces, event-driven), and a guest-side watcher
	// notes when the device appears and when it is bound.
	clock := e.guestClock()
	pciDevices := e.sh("echo /sys/bus/pci/devices/*")
	containerID := fmt.Sprintf("e2e%dc0ffee", n)
	created := time.Now()
	e.pod = &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vnf", Namespace: e.ns, Annotations: map[string]string{v1alpha1.NetworksAnnotation: "dataplane"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "vnf", Image: "vnf:1"}}},
	}
	e.must(e.c.Create(ctx, e.pod))
	done := make(chan watchResult, 1)
	go func() { done <- e.addAndWatch(containerID, pciDevices) }()
	// The guest shell is running within tens of milliseconds; Nova's
	// attach waits for it (the wait is not part of any timing below).
	time.Sleep(500 * time.Millisecond)
	close(hook.Gate)
	ev := hook.WaitAttach(ctx, t)
	mac := ev.Port.MACAddress
	w := <-done
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.addRC != 0 {
		t.Fatalf("CNI ADD of container %s: exit code %d: %s", containerID, w.addRC, w.addOut)
	}
	pci := w.pci
	switch {
	case w.mac == "":
		t.Log("the daemon unbound the netdev before the watcher could read its MAC")
	case !strings.EqualFold(w.mac, mac):
		t.Fatalf("the new netdev in the guest has MAC %s, the port %s", w.mac, mac)
	}
	if w.firstLook {
		t.Log("note: the device was there at the watcher's first look: its visible time is an upper bound")
	}
	nic, _ := hp.NIC(ev.Port.ID)
	t.Logf("port %s (MAC %s) hot-plugged on %s: pci %s", ev.Port.ID, mac, nic.RootPort, pci)
	if viommu {
		if out := e.sh(fmt.Sprintf("ls /sys/bus/pci/devices/%s/iommu_group/devices", pci)); !strings.Contains(out, pci) {
			t.Fatalf("device %s has no IOMMU group: %q", pci, out)
		}
	}
	result := w.addOut
	t.Logf("timing (%s): pod created → Nova attach reached the VM %v (then held until the guest watcher ran); QMP netdev_add+device_add %v; device_add returned → PCI device in the guest's sysfs %v → virtio-net netdev %v → bound to %s %v; bound → CNI ADD returned %v; pod created → ADD returned, minus the hold %v",
		driver, ev.Called.Sub(created).Round(time.Millisecond), ev.DeviceAdded.Sub(ev.Released).Round(time.Millisecond),
		clock(w.visible).Sub(ev.DeviceAdded).Round(time.Millisecond), clock(w.netdev).Sub(clock(w.visible)).Round(time.Millisecond),
		driver, clock(w.bound).Sub(clock(w.netdev)).Round(time.Millisecond),
		clock(w.added).Sub(clock(w.bound)).Round(time.Millisecond), clock(w.added).Sub(created).Round(time.Millisecond)-ev.Released.Sub(ev.Called).Round(time.Millisecond))
	t.Logf("daemon's own phase metrics (seconds, sum over this ADD):\n%s", e.daemonPhases())
	if !strings.Contains(result, pci) {
		t.Errorf("ADD result does not name the PCI address %s: %s", pci, result)
	}
	e.wantDriver(pci, driver)
	if out := e.sh("ls /sys/bus/pci/devices/" + pci + "/net 2>/dev/null; true"); strings.TrimSpace(out) != "" {
		t.Errorf("device %s still has a netdev (%s) after the bind to %s", pci, out, driver)
	}
	if out := e.sh("cat " + devInfoFile(e.ns, containerID)); !strings.Contains(out, pci) {
		t.Errorf("device-info file does not name %s: %s", pci, out)
	}
	st := e.waitKuryrPod("the daemon's report", func(s v1alpha1.InterfaceStatus) bool {
		return s.State == v1alpha1.StatePlugged && s.PCIAddress == pci && s.BoundDriver == driver
	})
	t.Logf("KuryrPod %s/%s net1: state %s, port %s, pci %s, original driver %s, bound driver %s",
		e.ns, e.pod.Name, st.State, st.PortID, st.PCIAddress, st.OriginalDriver, st.BoundDriver)

	// DPDK in the pod's namespace; the host counts what it sends.
	before := nic.Matched()
	out := e.sh(fmt.Sprintf(`
echo 128 > /proc/sys/vm/nr_hugepages
timeout -s INT 10 /bin/ip netns exec pod1 dpdk-testpmd -l 0-1 -n 1 -a %s --file-prefix=e2e -- \
	--forward-mode=txonly --stats-period 2 --nb-cores=1 --total-num-mbufs=8192 >/tmp/testpmd.log 2>&1
cat /tmp/testpmd.log
exit 0`, pci))
	frames := nic.Matched() - before
	t.Logf("testpmd (%s, in the pod's netns) output tail:\n%s", driver, vmenv.LastLines(out, 12))
	t.Logf("host counted %d testpmd txonly frames from port %s (%d frames in all)", frames, ev.Port.ID, nic.Frames())
	if frames <= 0 {
		t.Fatalf("testpmd on %s (%s) sent no frame the host could count", pci, driver)
	}

	// Daemon restart between ADD and DEL: the runtime's retried ADD
	// converges on the same device, still bound.
	e.restartDaemon()
	if again := e.cni("ADD", containerID, nil); !strings.Contains(again, pci) {
		t.Errorf("ADD after the restart does not name %s: %s", pci, again)
	}
	e.wantDriver(pci, driver)

	// DEL (with the ADD's result as prevResult): virtio-pci and the netdev
	// with the port's MAC come back.
	var prev any
	e.must(json.Unmarshal([]byte(result), &prev))
	delStart := time.Now()
	e.cni("DEL", containerID, prev)
	e.wantDriver(pci, "virtio-pci")
	if got := waitForMAC(ctx, t, e.vm, mac); got == "" {
		t.Fatal("no netdev with the port's MAC after DEL")
	}
	t.Logf("timing (%s): CNI DEL until the netdev is back %v", driver, time.Since(delStart).Round(time.Millisecond))
	e.waitKuryrPod("the daemon's DEL report", func(s v1alpha1.InterfaceStatus) bool { return s.State != v1alpha1.StatePlugged })

	// Pod deleted: the controller detaches (device_del), the device leaves
	// the guest, and the port is deleted.
	deleted := time.Now()
	e.must(client.IgnoreNotFound(e.c.Delete(ctx, e.pod, client.GracePeriodSeconds(0))))
	select {
	case p := <-hook.Detaches:
		if p.ID != ev.Port.ID {
			t.Fatalf("detached port %s, want %s", p.ID, ev.Port.ID)
		}
	case <-ctx.Done():
		t.Fatal("Nova never detached the port after the pod's deletion")
	}
	detached := time.Now()
	if res, err := e.vm.Agent.Run(ctx, "test -e /sys/bus/pci/devices/"+pci); err != nil || res.ExitCode == 0 {
		t.Fatalf("pci device %s still in the guest after the detach (%v)", pci, err)
	}
	e.eventually("the pod gone and no port left on the dataplane network", func() (bool, string) {
		err := e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: e.pod.Name}, &corev1.Pod{})
		left := cloud.DataplanePorts()
		return apierrors.IsNotFound(err) && len(left) == 0, fmt.Sprintf("pod: %v, ports: %+v", err, left)
	})
	t.Logf("timing (%s): pod deleted → device_del done (DEVICE_DELETED) %v", driver, detached.Sub(deleted).Round(time.Millisecond))
}

func (e *e2e) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) sh(script string) string {
	e.t.Helper()
	return sh(e.ctx, e.t, e.vm, script)
}

func (e *e2e) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

// waitKuryrPod waits until the pod's net1 status satisfies ok.
func (e *e2e) waitKuryrPod(what string, ok func(v1alpha1.InterfaceStatus) bool) v1alpha1.InterfaceStatus {
	e.t.Helper()
	var got v1alpha1.InterfaceStatus
	e.eventually("KuryrPod: "+what, func() (bool, string) {
		kp := &v1alpha1.KuryrPod{}
		if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: e.ns, Name: e.pod.Name}, kp); err != nil {
			return false, err.Error()
		}
		for _, s := range kp.Status.Interfaces {
			if s.IfName == "net1" {
				got = s
				return ok(s), fmt.Sprintf("%+v", s)
			}
		}
		return false, fmt.Sprintf("no net1 in %+v", kp.Status)
	})
	return got
}

// wantDriver fails unless pci is bound to driver in the guest.
func (e *e2e) wantDriver(pci, driver string) {
	e.t.Helper()
	got := strings.TrimSpace(e.sh(fmt.Sprintf("basename \"$(readlink /sys/bus/pci/devices/%s/driver)\"", pci)))
	if got != driver {
		e.t.Fatalf("device %s is bound to %q, want %q", pci, got, driver)
	}
}

// devInfoFile is where kuryr-daemon writes the NPWG device-info file of
// the pod's net1 when the runtime names none (binding.DeviceInfoPath): the
// name Multus gives its own, "<namespace>-<network>-<container>_<ifname>".
func devInfoFile(ns, containerID string) string {
	return fmt.Sprintf("/var/run/k8s.cni.cncf.io/devinfo/cni/%s-dataplane-%s_net1", ns, containerID)
}

// cni runs kuryr-cni in the guest as a runtime (here: Multus, delegating
// the pod's "dataplane" attachment) does: the CNI_* environment and the
// network configuration on stdin, with no runtimeConfig: Multus passes
// CNIDeviceInfoFile only to a delegate with a DeviceID (a device plugin's
// or a DRA claim's, docs/multus.md), which this network has not. It fails
// the test unless the shim exits 0, and returns its stdout.
func (e *e2e) cni(command, containerID string, prevResult any) string {
	e.t.Helper()
	res, err := e.vm.Agent.Run(e.ctx, e.cniScript(command, containerID, prevResult))
	if err != nil {
		e.t.Fatalf("CNI %s: %v", command, err)
	}
	if res.ExitCode != 0 {
		e.t.Fatalf("CNI %s: exit code %d\nstdout: %s\nstderr: %s", command, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// cniScript is the guest shell that runs one CNI command; its output is
// the shim's.
func (e *e2e) cniScript(command, containerID string, prevResult any) string {
	conf := map[string]any{}
	for k, v := range e.conf {
		conf[k] = v
	}
	if prevResult != nil {
		conf["prevResult"] = prevResult
	}
	b, err := json.Marshal(conf)
	e.must(err)
	args := fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
		e.ns, e.pod.Name, containerID, e.pod.UID)
	return fmt.Sprintf(`cat >/tmp/cni-%[2]s.json <<'EOF'
%[1]s
EOF
CNI_COMMAND=%[2]s CNI_CONTAINERID=%[3]s CNI_NETNS=%[4]s CNI_IFNAME=net1 CNI_PATH=/opt/cni/bin CNI_ARGS='%[5]s' \
	/opt/cni/bin/kuryr-cni </tmp/cni-%[2]s.json`, b, command, containerID, podNetns, args)
}

// waitDaemonReady waits until the daemon answers CNI STATUS (its informers
// have synced through the guestfwd to the host's API server).
func (e *e2e) waitDaemonReady() {
	e.t.Helper()
	start := time.Now()
	out := e.sh(`
i=0
until echo '{"cniVersion":"1.1.0","name":"dataplane","type":"kuryr-cni"}' | CNI_COMMAND=STATUS CNI_PATH=/opt/cni/bin /opt/cni/bin/kuryr-cni >/tmp/status.out 2>&1; do
	i=$((i+1))
	if [ $i -ge 600 ]; then cat /tmp/status.out; tail -n 30 /var/log/kuryr-daemon.log; exit 1; fi
	sleep 0.1
done
echo ready`)
	if !strings.Contains(out, "ready") {
		e.t.Fatalf("daemon not ready: %s", out)
	}
	e.t.Logf("kuryr-daemon in the guest ready (CNI STATUS ok) after %v", time.Since(start).Round(time.Millisecond))
}

// restartDaemon kills the daemon (SIGKILL: no cleanup) and starts it again.
func (e *e2e) restartDaemon() {
	e.t.Helper()
	e.sh(`pid=$(cat /run/kuryr-daemon.pid); kill -9 $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done; /etc/kuryr/start-daemon`)
	e.waitDaemonReady()
}
