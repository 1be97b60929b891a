package vmnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// guestMemoryMiB is the node VM's memory: the kubelet, containerd and the
// images live in the initramfs and in tmpfs (docs/node-vm.md has the
// measured use).
const guestMemoryMiB = 3072

// nodeBinaries are the programs the guest node takes from the cache of
// hack/build-node-bins.sh (runc is in the guest build, from Debian).
var nodeBinaries = []string{"containerd", "containerd-shim-runc-v2", "ctr", "kubelet"}

// Node is the node VM with containerd and the kubelet running.
type Node struct {
	t   *testing.T
	ctx context.Context
	cp  *aio.ControlPlane
	// CS talks to the API server as admin.
	CS kubernetes.Interface
	// VM is the QEMU guest.
	VM *qemu.VM
	// Started is when the VM was started, Booted when its agent answered,
	// Registered when the Node object was first seen.
	Started, Booted, Registered time.Time
}

// NodeOptions are the per-test parts of a guest node.
type NodeOptions struct {
	// ProviderID is the Node's spec.providerID.
	ProviderID string
	// Images are OCI layout tarballs that the node imports into containerd
	// at boot (the pause image is always imported).
	Images []string
	// Files are more files for the extra initramfs.
	Files []qemu.CPIOFile
	// VIOMMU boots with an emulated IOMMU (vfio-pci).
	VIOMMU bool
}

// StartNode boots the node VM with containerd and the kubelet and waits
// until the kubelet has registered the Node.
func StartNode(ctx context.Context, t *testing.T, opts NodeOptions) *Node {
	t.Helper()
	g := qemu.RequireGuest(t)
	cp := RequireControlPlane(t)
	binDir := testenv.NodeBinDir()
	for _, b := range nodeBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			qemu.SkipOrFail(t, fmt.Sprintf("%s not in %s: build it with hack/build-node-bins.sh", b, binDir))
		}
	}
	cs, err := kubernetes.NewForConfig(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{t: t, ctx: ctx, cp: cp, CS: cs}
	initrd := n.initramfs(binDir, opts)
	_, apiPort, _ := strings.Cut(strings.TrimPrefix(cp.URL, "https://"), ":")
	for attempt := 1; ; attempt++ {
		n.Started = time.Now()
		vm := qemu.StartForTest(t, qemu.Options{
			Kernel: g.Kernel, Initrd: g.Initrd, ExtraInitrd: []string{initrd}, MemoryMiB: guestMemoryMiB, VIOMMU: opts.VIOMMU,
			Mgmt: &qemu.Mgmt{GuestFwd: []qemu.GuestFwd{{Guest: guestAPIAddr, Host: "127.0.0.1:" + apiPort}}},
		})
		n.VM, n.Booted = vm, time.Now()
		t.Cleanup(func() {
			// Runs before the VM's own cleanup closes it; a VM given up
			// for a fresh one has nothing to tell.
			if t.Failed() && n.VM == vm {
				n.dumpLogs(vm)
			}
		})
		if attempt == 1 {
			// The Node outlives the VM in the shared control plane:
			// remove it so that the next test's kubelet registers
			// afresh.
			t.Cleanup(func() {
				_ = cs.CoreV1().Nodes().Delete(context.Background(), NodeName, metav1.DeleteOptions{})
			})
		}
		if out := n.Sh("test -x /usr/sbin/runc && echo ok || echo missing"); strings.TrimSpace(out) != "ok" {
			t.Fatalf("the guest in %s has no /usr/sbin/runc: rebuild it with hack/vm/build-guest.sh", g.Dir)
		}
		err := n.waitRegistered(vm)
		if err == nil {
			n.Registered = time.Now()
			return n
		}
		if attempt < bootAttempts && vm.SoftLockedUp() {
			t.Logf("RETRY (boot %d of %d): the guest kernel soft-locked before the kubelet registered Node %s (%v); "+
				"nothing of kuryr-dpdk runs in the guest before then. Booting a fresh VM. The locked guest's console (tail):\n%s",
				attempt, bootAttempts, NodeName, err, vm.Console(4000))
			_ = vm.Close()
			continue
		}
		t.Fatalf("the guest's kubelet did not register Node %s: %v", NodeName, err)
	}
}

// bootAttempts bounds the node VM's boots in StartNode: a guest kernel
// that soft-locks before the kubelet registers (seen once under TCG, in
// containerd and ctr importing images; the kernel panics on it,
// see qemu's softlockup_panic) gets one fresh VM, said in the log with the
// locked guest's console. Any other failure, and a second lockup, fail.
const bootAttempts = 2

// initramfs writes the extra initramfs of the node: the node binaries, the
// images, containerd's and the kubelet's configuration, the kubelet's
// kubeconfig and the boot hook that starts them (what a node's service
// manager does).
func (n *Node) initramfs(binDir string, opts NodeOptions) string {
	t := n.t
	var files []qemu.CPIOFile
	for _, b := range nodeBinaries {
		f, err := qemu.HostFile("usr/bin/"+b, filepath.Join(binDir, b))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imgDir := t.TempDir()
	pause, err := aio.BuildPauseImage(n.ctx, RepoRoot(t), imgDir)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range append([]string{pause}, opts.Images...) {
		f, err := qemu.HostFile(fmt.Sprintf("var/lib/kuryr-images/%02d-%s", i, filepath.Base(img)), img)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	kubeconfig, err := n.cp.NodeKubeconfig(NodeName, "https://"+guestAPIAddr)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files,
		qemu.CPIOFile{Name: "etc/containerd/config.toml", Mode: 0o644, Data: []byte(aio.ContainerdConfig("/usr/sbin/runc", true))},
		qemu.CPIOFile{Name: "etc/kubernetes/kubelet.yaml", Mode: 0o644, Data: []byte(aio.KubeletConfig(GuestNodeIP, "/", opts.ProviderID))},
		qemu.CPIOFile{Name: "etc/kubernetes/kubelet.kubeconfig", Mode: 0o600, Data: kubeconfig},
		qemu.CPIOFile{Name: "etc/hosts", Mode: 0o644, Data: []byte("127.0.0.1 localhost\n" + GuestNodeIP + " " + NodeName + "\n")},
		qemu.CPIOFile{Name: "etc/resolv.conf", Mode: 0o644, Data: []byte("nameserver 10.0.2.3\n")},
		// The kubelet reads the user namespace ranges from /etc/passwd.
		qemu.CPIOFile{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		qemu.CPIOFile{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\n")},
		qemu.CPIOFile{Name: "etc/machine-id", Mode: 0o444, Data: []byte(strings.Repeat("5a", 16) + "\n")},
		qemu.CPIOFile{Name: "etc/os-release", Mode: 0o644, Data: []byte("NAME=\"kuryr-dpdk node VM\"\nID=kuryr-node\nPRETTY_NAME=\"kuryr-dpdk node VM (busybox initramfs)\"\n")},
		qemu.CPIOFile{Name: "etc/kuryr/start-node", Mode: 0o755, Data: []byte(startNodeScript)},
		qemu.CPIOFile{Name: "etc/kuryr/start-kubelet", Mode: 0o755, Data: []byte(startKubeletScript)},
		qemu.CPIOFile{Name: "etc/kuryr/init.d/40-node", Mode: 0o755, Data: []byte(nodeHook)},
	)
	files = append(files, opts.Files...)
	path := filepath.Join(t.TempDir(), "node.cpio")
	if err := qemu.WriteCPIOFile(path, files); err != nil {
		t.Fatal(err)
	}
	return path
}

// GuestNodeIP is the management NIC's address (hack/vm/init), the Node's
// InternalIP.
const GuestNodeIP = "10.0.2.15"

// nodeHook is the boot hook: what a node's service manager prepares before
// the kubelet (cgroup v2 with its controllers for the kubelet's QoS
// cgroups, a shared root for mount propagation into pods, tmpfs file systems
// for the kubelet and containerd, 2 MiB huge pages
// reported as hugepages-2Mi, the modules a node's modules-load.d names:
// overlay for containerd, 8021q for nested-vlan (busybox's modprobe has no
// alias table for the kernel's request of "rtnl-link-vlan") and the DPDK
// drivers), then /etc/kuryr/start-node in the background so that the guest
// agent comes up meanwhile.
const nodeHook = `#!/bin/sh
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control; done
mount --make-rshared /
# The kubelet's and containerd's file systems (cAdvisor finds no file system
# for the initramfs's rootfs, and the kubelet refuses to start without one).
for d in /var/lib/kubelet /var/lib/containerd; do mkdir -p $d; mount -t tmpfs -o mode=0700 tmpfs $d; done
echo 256 >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
for m in overlay 8021q uio_pci_generic vfio-pci vfio_iommu_type1; do modprobe $m || echo "modprobe $m failed" >/dev/console; done
mkdir -p /var/log
/etc/kuryr/start-node </dev/null >/var/log/start-node.log 2>&1 &
`

// startNodeScript starts containerd, imports the pause image, starts the
// kubelet and imports the other images, printing guest uptimes ("<step>
// <uptime>") for the timings.
const startNodeScript = `#!/bin/sh
up() { cut -d' ' -f1 /proc/uptime; }
echo "start $(up)"
mkdir -p /var/lib/containerd /run/containerd /var/log/pods /var/log/containers /etc/cni/net.d /opt/cni/bin /run/netns
/usr/bin/containerd --config=/etc/containerd/config.toml --log-level=info >>/var/log/containerd.log 2>&1 &
echo $! >/run/containerd.pid
until /usr/bin/ctr version >/dev/null 2>&1; do sleep 0.1; done
echo "containerd $(up)"
# The pause image first, then the kubelet registers the node while the
# other images are imported (tens of seconds under TCG).
/usr/bin/ctr -n k8s.io images import /var/lib/kuryr-images/00-* || echo "import of the pause image failed" >/dev/console
echo "pause $(up)"
/etc/kuryr/start-kubelet
for i in /var/lib/kuryr-images/*; do
	case "$i" in */00-*) continue ;; esac
	/usr/bin/ctr -n k8s.io images import "$i" || echo "import $i failed" >/dev/console
done
echo "images $(up)"
`

// startKubeletScript starts (again, after a stop) the kubelet.
const startKubeletScript = `#!/bin/sh
/usr/bin/kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/etc/kubernetes/kubelet.kubeconfig \
	--hostname-override=` + NodeName + ` --node-ip=` + GuestNodeIP + ` --v=2 </dev/null >>/var/log/kubelet.log 2>&1 &
echo $! >/run/kubelet.pid
echo "kubelet $(cut -d' ' -f1 /proc/uptime)"
`

// sh runs script in the guest and fails the test unless it exits 0.
func (n *Node) Sh(script string) string {
	n.t.Helper()
	return qemu.MustSh(n.ctx, n.t, n.VM, script)
}

// RestartKubelet stops the kubelet (SIGTERM, as a service manager does),
// starts it again and waits until the new kubelet answers its health check
// and has logged the pod key (namespace/name) in a "SyncLoop ADD" from the
// API server.
func (n *Node) RestartKubelet(key string) {
	n.t.Helper()
	n.Sh(`lines=$(wc -l </var/log/kubelet.log)
echo $lines >/run/kubelet.log.restart
pid=$(cat /run/kubelet.pid)
kill $pid
i=0
while kill -0 $pid 2>/dev/null; do i=$((i+1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done
/etc/kuryr/start-kubelet`)
	err := wait.PollUntilContextTimeout(n.ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		res, err := n.VM.Agent.Run(ctx, `wget -q -O - http://127.0.0.1:10248/healthz && echo && tail -n +$(cat /run/kubelet.log.restart) /var/log/kubelet.log | grep '"SyncLoop ADD" source="api"'`)
		return err == nil && res.ExitCode == 0 && strings.Contains(res.Stdout, `"`+key+`"`), nil
	})
	if err != nil {
		n.t.Fatalf("the restarted kubelet did not sync pod %s: %v", key, err)
	}
}

// waitImages waits until start-node has imported every image and returns
// its steps.
func (n *Node) waitImages() map[string]float64 {
	n.t.Helper()
	var steps map[string]float64
	err := wait.PollUntilContextTimeout(n.ctx, time.Second, 4*time.Minute, true, func(context.Context) (bool, error) {
		steps = n.bootSteps()
		_, ok := steps["images"]
		return ok, nil
	})
	if err != nil {
		n.t.Fatalf("the node did not import its images: %v", err)
	}
	return steps
}

// waitRegistered waits until the kubelet of vm has registered the Node;
// it returns at once when the VM has exited (a guest kernel panic).
func (n *Node) waitRegistered(vm *qemu.VM) error {
	n.t.Helper()
	polls := 0
	return wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-vm.Exited():
			return false, errors.New("the node VM exited (its console is in the log)")
		default:
		}
		if _, err := n.CS.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{}); err == nil {
			return true, nil
		}
		if polls++; polls%10 == 0 {
			// start-node ends by starting the kubelet: a kubelet that is
			// gone by then has failed.
			res, err := vm.Agent.Run(ctx, "[ ! -f /run/kubelet.pid ] || kill -0 $(cat /run/kubelet.pid)")
			if err == nil && res.ExitCode != 0 {
				return false, errors.New("the kubelet exited")
			}
		}
		return false, nil
	})
}

// LogBootTimings waits for the images and logs the boot's timings.
func (n *Node) LogBootTimings() {
	n.t.Helper()
	steps := n.waitImages()
	n.t.Logf("timings: VM start → agent %v; guest uptime: start-node %.2f s, containerd up %.2f s, pause image imported %.2f s, kubelet started %.2f s, other images imported %.2f s; VM start → Node registered %v",
		n.Booted.Sub(n.Started).Round(time.Millisecond), steps["start"], steps["containerd"], steps["pause"], steps["kubelet"], steps["images"],
		n.Registered.Sub(n.Started).Round(time.Millisecond))
}

// bootSteps are the guest uptimes start-node printed, by step.
func (n *Node) bootSteps() map[string]float64 {
	n.t.Helper()
	out := n.Sh("cat /var/log/start-node.log")
	steps := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				steps[f[0]] = v
			}
		}
	}
	return steps
}

// dumpLogs logs the tails of vm's node logs.
func (n *Node) dumpLogs(vm *qemu.VM) {
	res, err := vm.RunForDiagnostics(`for f in /var/log/start-node.log /var/log/containerd.log /var/log/kubelet.log /var/log/kuryr-*.log; do
	[ -f $f ] && { echo "=== $f"; tail -n 40 $f; }
done; free -m`)
	if err != nil {
		n.t.Logf("guest logs: %v", err)
		return
	}
	n.t.Logf("guest logs:\n%s%s", res.Stdout, res.Stderr)
}

// RepoRoot is the repository's root: the nearest directory above the
// working directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func (n *Node) WaitNodeCondition(typ corev1.NodeConditionType, want corev1.ConditionStatus, bound time.Duration) {
	n.t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, bound, true, func(ctx context.Context) (bool, error) {
		node, err := n.CS.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == typ {
				last = fmt.Sprintf("%s=%s: %s", c.Type, c.Status, c.Message)
				return c.Status == want, nil
			}
		}
		return false, nil
	})
	if err != nil {
		n.t.Fatalf("Node %s: %s not %s (%s): %v", NodeName, typ, want, last, err)
	}
}

// WaitCapacity waits until the Node reports a capacity of resource name
// and returns it.
func (n *Node) WaitCapacity(name corev1.ResourceName) resource.Quantity {
	n.t.Helper()
	var q resource.Quantity
	err := wait.PollUntilContextTimeout(n.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := n.CS.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		var ok bool
		q, ok = node.Status.Capacity[name]
		return ok, nil
	})
	if err != nil {
		n.t.Fatalf("Node %s reports no %s capacity: %v", NodeName, name, err)
	}
	return q
}

// WaitContainerRunning waits until every container of the pod runs and
// returns when the test saw it.
func (n *Node) WaitContainerRunning(namespace, name string, bound time.Duration) time.Time {
	n.t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(n.ctx, 100*time.Millisecond, bound, true, func(ctx context.Context) (bool, error) {
		pod, err := n.CS.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
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
		ev, _ := n.CS.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
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

// CheckRegistration checks the Node the kubelet registered with the host's
// API server through the restricted forward: kubelet v1.37.2, containerd
// 2.4.2, the management NIC's address as InternalIP, providerID, and the
// huge pages the boot hook reserved as hugepages-2Mi capacity.
func (n *Node) CheckRegistration(providerID string) {
	n.t.Helper()
	node, err := n.CS.CoreV1().Nodes().Get(n.ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	info := node.Status.NodeInfo
	if info.KubeletVersion != "v1.37.2" || info.ContainerRuntimeVersion != "containerd://2.4.2" {
		n.t.Errorf("Node %s: kubelet %q, runtime %q; want v1.37.2 and containerd://2.4.2", NodeName, info.KubeletVersion, info.ContainerRuntimeVersion)
	}
	if node.Spec.ProviderID != providerID {
		n.t.Errorf("Node %s: providerID %q, want %q", NodeName, node.Spec.ProviderID, providerID)
	}
	var ip string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	if ip != GuestNodeIP {
		n.t.Errorf("Node %s: InternalIP %q, want %s (%v)", NodeName, ip, GuestNodeIP, node.Status.Addresses)
	}
	// The capacity follows the kubelet's first status update.
	hp := n.WaitCapacity("hugepages-2Mi")
	if want := resource.MustParse("512Mi"); hp.Cmp(want) != 0 {
		n.t.Errorf("Node %s: hugepages-2Mi capacity %s, want %s (256 pages reserved at boot)", NodeName, hp.String(), want.String())
	}
}
