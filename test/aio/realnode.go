package aio

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// A real node runs containerd (v2, with Debian's runc) and a kubelet, both
// in the node's network namespace, in a mount namespace of the node's own
// (mountns.go) and under a cgroup parent of the node's own (cgroups.go).
// The kubelet registers the Node itself and talks to the API server through
// the fabric proxy (fabricproxy.go); containerd runs kuryr-cni from the
// node's /opt/cni/bin with the conflist in its /etc/cni/net.d, as on a VM.

// PauseImage is the sandbox image of the real nodes, built locally from
// test/aio/cmd/pause (internal/imagebuild, as make image builds its images)
// and imported into every node's containerd.
const PauseImage = "kuryr-aio.local/pause:1"

// nodeBinaries are the programs a real node needs from the directory
// hack/build-node-bins.sh fills.
var nodeBinaries = []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "kubelet"}

// nodePaths are the paths a real node's mount namespace has of its own:
// each is a directory under the node's fs/ directory bind-mounted over the
// same path. /run/netns, where containerd mounts the pods' network
// namespaces, is shared: kuryr-daemon's pod gets it with HostToContainer
// propagation (deploy/kuryr-dpdk/daemon.yaml) and sees each new one.
var nodePaths = []bindMount{
	{Dst: "/run/containerd"}, {Dst: "/var/lib/containerd"}, {Dst: "/var/lib/kubelet"}, {Dst: "/var/lib/cni"},
	{Dst: "/var/log/pods"}, {Dst: "/var/log/containers"}, {Dst: "/etc/cni/net.d"}, {Dst: "/opt/cni/bin"},
	{Dst: "/etc/containerd"}, {Dst: "/etc/cdi"}, {Dst: "/var/run/cdi"}, {Dst: "/run/kuryr-dpdk"},
	{Dst: "/var/lib/kuryr-dpdk"}, {Dst: "/run/netns", Shared: true},
}

// nodeSysfs is where a real node's mount namespace shows its simulated
// /sys (Node.SysfsRoot/sys): the all-in-one overlay gives it to
// kuryr-daemon's pod as its /sys.
const nodeSysfs = "/var/lib/kuryr-aio/sys"

// nodeDevRoot is the root of a real node's simulated device nodes: its
// dev/ (Node.SysfsRoot/dev, where the PCI simulator makes /dev/uioN) is
// the node's /var/lib/kuryr-aio/dev, and kuryr-daemon's --dra-dev-root
// (deploy/overlays/all-in-one), so that the CDI specs name host paths
// containerd finds in the node's mount namespace.
const nodeDevRoot = "/var/lib/kuryr-aio"

// FabricCloudPort is the simulated cloud's port on the fabric (its fabric
// proxy's), where kuryr-controller's pod reaches Keystone, Neutron and Nova.
const FabricCloudPort = 5000

// nodeSocket is kuryr-daemon's CNI socket on a real node, as the base
// DaemonSet and its conflist have it.
const nodeSocket = "/run/kuryr-dpdk/cni.sock"

// kernelTunables are the sysctls the kubelet sets when they differ (it
// checks them at start). The kernel is the host's, shared by everything
// on it, so a node's mount namespace shows the kubelet files with the values
// it wants instead of letting it change the host.
var kernelTunables = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// realNode is what runs a real node.
type realNode struct {
	fs         string // the node's own directories (nodePaths) live under it
	mountNS    string // file holding the node's mount namespace
	cgroup     *cgroupTree
	containerd *Process
	kubelet    *Process
	started    time.Time
}

// nodeFS is path inside the node's mount namespace, as seen from the host.
func (r *realNode) nodeFS(path string) string { return filepath.Join(r.fs, path) }

// prepareRealNodes does what all real nodes need once: checks their
// binaries, builds the pause image, makes the holder of their mount
// namespaces and starts the fabric proxy to the API server.
func (e *Env) prepareRealNodes(ctx context.Context) error {
	for _, b := range nodeBinaries {
		if _, err := os.Stat(filepath.Join(e.opts.NodeBinDir, b)); err != nil {
			return fmt.Errorf("%s not found in %s: build it with hack/build-node-bins.sh: %w", b, e.opts.NodeBinDir, err)
		}
	}
	images := filepath.Join(e.StateDir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		return err
	}
	var err error
	if e.pauseImage, err = BuildPauseImage(ctx, e.opts.RepoRoot, images); err != nil {
		return err
	}
	if e.demoImage, err = buildDemoImage(images); err != nil {
		return err
	}

	if !e.opts.NoKuryr {
		if err := e.buildKuryrImage(); err != nil {
			return err
		}
	}
	if e.opts.Multus {
		if e.multusImage, err = BuildMultusImage(e.opts.MultusBinDir, images); err != nil {
			return err
		}
	}

	e.mountNSDir = filepath.Join(e.StateDir, "mntns")
	release, err := mountNSHolder(e.mountNSDir)
	if err != nil {
		return err
	}
	e.defer_(release)

	listen := strings.TrimPrefix(e.cp.FabricURL, "https://")
	if e.fabricProxy, err = startFabricProxy(e.fabric, listen, strings.TrimPrefix(e.cp.URL, "https://")); err != nil {
		return err
	}
	e.defer_(e.fabricProxy.Close)
	cloudListen := net.JoinHostPort(e.Networks.Worker.GatewayIP.String(), strconv.Itoa(FabricCloudPort))
	if e.cloudProxy, err = startFabricProxy(e.fabric, cloudListen, strings.TrimPrefix(e.Cloud.URL(), "http://")); err != nil {
		return err
	}
	e.defer_(e.cloudProxy.Close)
	e.fabricCloudURL = "http://" + cloudListen
	e.logf("real nodes: containerd, runc and kubelet from %s; the API server at %s and the cloud at %s for them",
		e.opts.NodeBinDir, e.cp.FabricURL, e.fabricCloudURL)
	return nil
}

// BuildPauseImage builds test/aio/cmd/pause (static) and writes PauseImage
// into dir as an OCI layout tarball (internal/imagebuild, as make image
// builds its images); it returns the tarball's path.
func BuildPauseImage(ctx context.Context, repoRoot, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	pause := filepath.Join(dir, "pause")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "./test/aio/cmd/pause")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./test/aio/cmd/pause: %w\n%s", err, out)
	}
	return writeImage(dir, "pause.oci.tar", imagebuild.Spec{Ref: PauseImage, Entrypoint: []string{"/pause"},
		Entries: []imagebuild.Entry{{Path: "/pause", Source: pause, Mode: 0o755}}})
}

// startRealNode starts containerd and the kubelet of n and waits until its
// Node object is Ready.
func (e *Env) startRealNode(ctx context.Context, n *Node) error {
	start := time.Now()
	r := &realNode{fs: filepath.Join(n.Dir, "fs"), mountNS: filepath.Join(e.mountNSDir, n.Name), started: start}
	n.real = r
	n.Socket = r.nodeFS(nodeSocket)
	binds := make([]bindMount, 0, len(nodePaths)+len(kernelTunables)+2)
	for _, p := range nodePaths {
		if err := os.MkdirAll(r.nodeFS(p.Dst), 0o755); err != nil {
			return err
		}
		binds = append(binds, bindMount{Src: r.nodeFS(p.Dst), Dst: p.Dst, Shared: p.Shared})
	}
	// The device-info files where the daemon's pod writes them (its
	// /var/run/k8s.cni.cncf.io hostPath) are the node's DevinfoDir.
	binds = append(binds, bindMount{Src: filepath.Join(n.devinfoRoot, "var/run/k8s.cni.cncf.io"), Dst: "/run/k8s.cni.cncf.io"},
		bindMount{Src: filepath.Join(n.SysfsRoot, "sys"), Dst: nodeSysfs},
		bindMount{Src: filepath.Join(n.SysfsRoot, "dev"), Dst: filepath.Join(nodeDevRoot, "dev")})
	if err := os.MkdirAll(filepath.Join(n.SysfsRoot, "dev"), 0o755); err != nil {
		return err
	}
	for name, v := range kernelTunables {
		src := filepath.Join(n.Dir, "sysctl", strings.ReplaceAll(name, "/", "."))
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(src, []byte(v+"\n"), 0o444); err != nil {
			return err
		}
		binds = append(binds, bindMount{Src: src, Dst: "/proc/sys/" + name})
	}
	if err := createMountNS(r.mountNS, binds); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	e.defer_(func() error { return removeMountNS(r.mountNS) })
	var err error
	if r.cgroup, err = createCgroupTree("/" + e.nsName(n.Name)); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	// Registered after the mount namespace: the teardown kills the node's
	// processes (shims and containers included) before the namespace goes.
	e.defer_(r.cgroup.remove)

	if e.opts.NoKuryr {
		// Else kuryr-daemon's init container installs kuryr-cni.
		if err := e.installCNI(n, r); err != nil {
			return err
		}
	}
	if err := e.startContainerd(ctx, n, r); err != nil {
		return err
	}
	for _, img := range []string{e.pauseImage, e.demoImage, e.kuryrImage, e.multusImage} {
		if img == "" {
			continue
		}
		if err := e.importImage(ctx, n, img); err != nil {
			return err
		}
	}
	e.logf("node %s: containerd up, images imported in %.1f s", n.Name, time.Since(start).Seconds())
	if err := e.startRealKubelet(ctx, n, r); err != nil {
		return err
	}
	e.logf("node %s: kubelet registered the node %.1f s after the node's start", n.Name, time.Since(start).Seconds())
	return nil
}

// installCNI puts the CNI plugins of the environment's options (NoKuryr)
// into the node's /opt/cni/bin and their network configuration into
// /etc/cni/net.d, where containerd looks.
func (e *Env) installCNI(n *Node, r *realNode) error {
	conf, err := e.netConfList(n)
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.nodeFS("/etc/cni/net.d/10-kuryr.conflist"), conf, 0o644); err != nil {
		return err
	}
	binDir := e.opts.CNIBinDir
	if binDir == "" {
		binDir = e.binDir
	}
	entries, err := os.ReadDir(binDir)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if ent.IsDir() || (e.opts.CNIConfig == nil && ent.Name() != "kuryr-cni") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(binDir, ent.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(r.nodeFS(filepath.Join("/opt/cni/bin", ent.Name())), b, 0o755); err != nil {
			return err
		}
	}
	// The node-local file naming the daemon's socket, as install-cni
	// writes it: the shim takes the socket from nowhere else.
	b, err := cniapi.MarshalNodeConfig(cniapi.NodeConfig{DaemonSocket: n.Socket})
	if err != nil {
		return err
	}
	return os.WriteFile(r.nodeFS(filepath.Join("/opt/cni/bin", cniapi.NodeConfigName)), b, 0o644)
}

// nodeProcess is a process of node n: in its network and mount namespaces,
// moved into its cgroup's system child once started.
func (e *Env) nodeProcess(n *Node, name, bin string, args ...string) *Process {
	full := append([]string{"--net=" + n.NetNS, "--mount=" + n.real.mountNS, "--", bin}, args...)
	return e.newProcess(name+"-"+n.Name, "nsenter", full, nil)
}

func (e *Env) startNodeProcess(n *Node, p *Process) error {
	if err := e.startProc(p); err != nil {
		return err
	}
	// nsenter execs the program: same pid. Nothing forks before this
	// (containerd starts shims only for containers, the kubelet runs none
	// before it has synced).
	return n.real.cgroup.enterSystem(p.Pid())
}

func (e *Env) startContainerd(ctx context.Context, n *Node, r *realNode) error {
	conf := r.nodeFS("/etc/containerd/config.toml")
	if err := os.WriteFile(conf, []byte(ContainerdConfig(filepath.Join(e.opts.NodeBinDir, "runc"), false)), 0o644); err != nil {
		return err
	}
	r.containerd = e.nodeProcess(n, "containerd", filepath.Join(e.opts.NodeBinDir, "containerd"),
		"--config=/etc/containerd/config.toml", "--log-level=info")
	return e.runContainerd(ctx, n)
}

// runContainerd starts n's containerd process and waits until it answers.
func (e *Env) runContainerd(ctx context.Context, n *Node) error {
	r := n.real
	if err := e.startNodeProcess(n, r.containerd); err != nil {
		return err
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if r.containerd.Pid() == 0 {
			return false, fmt.Errorf("containerd of %s exited while starting; its log ends:%s", n.Name, r.containerd.Tail(15))
		}
		return e.ctr(ctx, n, "version").Run() == nil, nil
	})
	if err != nil {
		return fmt.Errorf("containerd of %s not up (%s): %w", n.Name, r.containerd.Log, err)
	}
	return nil
}

// ctr is a ctr command talking to n's containerd in the CRI's namespace.
func (e *Env) ctr(ctx context.Context, n *Node, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(e.opts.NodeBinDir, "ctr"), append([]string{
		"--address", n.real.nodeFS("/run/containerd/containerd.sock"), "--namespace", "k8s.io"}, args...)...)
}

// StopSandbox stops the pod sandbox id on real node n through the CRI
// (crictl stopp), as when a sandbox dies: containerd tears its network
// down with a CNI DEL, and the kubelet then starts a new sandbox for the
// pod (a second ADD).
func (e *Env) StopSandbox(ctx context.Context, n *Node, id string) error {
	if n.real == nil {
		return fmt.Errorf("stop sandbox %s on %s: a kubelet stand-in has no CRI", id, n.Name)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(e.opts.NodeBinDir, "crictl"),
		"--runtime-endpoint", "unix://"+n.real.nodeFS("/run/containerd/containerd.sock"), "stopp", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("crictl stopp %s on %s: %w: %s", id, n.Name, err, out)
	}
	return nil
}

// RestartRuntime stops node n's kubelet and containerd (SIGTERM, as a
// service manager does) and starts them again, containerd first. The pods'
// shims and containers keep running meanwhile, as on a real node.
func (e *Env) RestartRuntime(ctx context.Context, n *Node) error {
	r := n.real
	if r == nil {
		return fmt.Errorf("restart the runtime of %s: a kubelet stand-in has none", n.Name)
	}
	for _, p := range []*Process{r.kubelet, r.containerd} {
		if err := p.stop(10 * time.Second); err != nil {
			return err
		}
	}
	if err := e.runContainerd(ctx, n); err != nil {
		return err
	}
	if err := e.startNodeProcess(n, r.kubelet); err != nil {
		return err
	}
	e.logf("node %s: containerd and kubelet restarted", n.Name)
	return nil
}

// ContainerdConfig is a real node's containerd configuration, runc being
// the runc binary. Paths are the defaults (the node's own, through its
// mount namespace) but for runc. restrict_oom_score_adj: root here lacks
// CAP_SYS_RESOURCE; pod network namespaces in /run/netns (the node's own,
// nodePaths); NRI off; the internal loopback (lo is containerd's own); the
// pause image pinned and local. noPivotRoot makes runc enter a container's
// root with chroot instead of pivot_root, which fails on a node whose root
// is an initramfs (the node VM of test/vmpod).
func ContainerdConfig(runc string, noPivotRoot bool) string {
	return `version = 4
disabled_plugins = ['io.containerd.nri.v1.nri']

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '` + PauseImage + `'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  cdi_spec_dirs = ['/etc/cdi', '/var/run/cdi']
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = '` + runc + `'
      Root = '/run/containerd/runc'
      SystemdCgroup = false
      NoPivotRoot = ` + strconv.FormatBool(noPivotRoot) + `
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/opt/cni/bin']
    conf_dir = '/etc/cni/net.d'
    use_internal_loopback = true
`
}

// importImage imports an OCI image tarball into n's containerd, in the
// namespace the CRI uses.
func (e *Env) importImage(ctx context.Context, n *Node, tarball string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if out, err := e.ctr(ctx, n, "images", "import", tarball).CombinedOutput(); err != nil {
		return fmt.Errorf("import %s into containerd of %s: %w: %s", tarball, n.Name, err, out)
	}
	return nil
}

func (e *Env) startRealKubelet(ctx context.Context, n *Node, r *realNode) error {
	dir := r.nodeFS("/var/lib/kubelet")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, e.cp.FabricURL, e.cp.caPEM, n.Name, e.cp.nodeTokens[n.Name]); err != nil {
		return err
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(KubeletConfig(n.IP(), n.real.cgroup.Path, "openstack:///"+n.Server.Server.ID)), 0o644); err != nil {
		return err
	}
	r.kubelet = e.nodeProcess(n, "kubelet", filepath.Join(e.opts.NodeBinDir, "kubelet"),
		"--config=/var/lib/kubelet/config.yaml", "--kubeconfig=/var/lib/kubelet/kubeconfig",
		"--hostname-override="+n.Name, "--node-ip="+n.IP(), "--v=2")
	if err := e.startNodeProcess(n, r.kubelet); err != nil {
		return err
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if r.kubelet.Pid() == 0 {
			return false, fmt.Errorf("kubelet of %s exited while starting; its log ends:%s", n.Name, r.kubelet.Tail(20))
		}
		_, err := e.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
		}
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not registered (%s; kubelet log %s): %w", n.Name, last, r.kubelet.Log, err)
	}
	return nil
}

// waitRealNodesReady waits until every real node is Ready. containerd
// asks the CNI plugin for its status (CNI STATUS), and kuryr-cni answers
// "not ready" until the node's kuryr-daemon serves: a real node is Ready
// only once kuryr-daemon runs on it.
func (e *Env) waitRealNodesReady(ctx context.Context) error {
	for _, n := range e.Nodes {
		var last string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
			if n.real.kubelet.Pid() == 0 {
				return false, fmt.Errorf("kubelet of %s exited; its log ends:%s", n.Name, n.real.kubelet.Tail(20))
			}
			node, err := e.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady {
					last = fmt.Sprintf("Ready=%s: %s", c.Status, c.Message)
					return c.Status == corev1.ConditionTrue, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("node %s not Ready (%s; kubelet log %s): %w", n.Name, last, n.real.kubelet.Log, err)
		}
		e.logf("node %s Ready %.1f s after its start", n.Name, time.Since(n.real.started).Seconds())
	}
	return e.waitSchedulable(ctx)
}

// KubeletConfig is a real node's KubeletConfiguration: the kubelet serves
// on address, its pods go under the cgroup parent cgroupRoot, the Node gets
// providerID. cgroupfs and failCgroupV1=false: the host has cgroup v1. The
// kubelet serves only inside the node's namespace (or VM), so it lets anyone
// in (the API server's exec and logs calls).
func KubeletConfig(address, cgroupRoot, providerID string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
providerID: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: /etc/resolv.conf
`, address, cgroupRoot, providerID)
}

// PodNetNS returns a path to the network namespace of a pod running on one
// of the environment's nodes: the stand-in's namespace file, or on a real
// node /proc/<pid>/ns/net of a process of the pod (found by its cgroup,
// kubepods/…/pod<uid>, under the node's cgroup parent).
func (e *Env) PodNetNS(ctx context.Context, namespace, name string) (string, error) {
	pod, err := e.Clientset.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	n := e.Node(pod.Spec.NodeName)
	if n == nil {
		return "", fmt.Errorf("pod %s/%s is on %q, not one of the environment's nodes", namespace, name, pod.Spec.NodeName)
	}
	if n.real == nil {
		if p := n.Kubelet.NetNS(namespace, name); p != "" {
			return p, nil
		}
		return "", fmt.Errorf("pod %s/%s has no network namespace on %s", namespace, name, n.Name)
	}
	for _, pid := range n.real.cgroup.podPIDs(string(pod.UID)) {
		p := fmt.Sprintf("/proc/%d/ns/net", pid)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("pod %s/%s (uid %s) has no process on %s", namespace, name, pod.UID, n.Name)
}

// ContainerdLog is the path of a real node's containerd log, "" on a
// stand-in node.
func (n *Node) ContainerdLog() string {
	if n.real == nil {
		return ""
	}
	return n.real.containerd.Log
}

// SandboxRuns counts the sandboxes containerd of pod's real node was asked
// to run for it (RunPodSandbox in its log): one CNI ADD each, the failed
// ones included.
func (e *Env) SandboxRuns(pod *corev1.Pod) (int, error) {
	n := e.Node(pod.Spec.NodeName)
	if n == nil || n.real == nil {
		return 0, fmt.Errorf("pod %s/%s is on %q, not a real node of the environment", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	b, err := os.ReadFile(n.real.containerd.Log)
	if err != nil {
		return 0, err
	}
	return strings.Count(string(b), `RunPodSandbox for name:\"`+pod.Name+`\" uid:\"`+string(pod.UID)+`\"`), nil
}

// AdaptPod adapts a pod written for the kubelet stand-in to what a real
// node has: its containers run the local pause image (there is no
// registry), without CPU, memory or hugepages requests (the host's CPUs
// are few and it has no hugepages), and it uses the node's DNS settings
// (there is no cluster DNS; the kubelet would warn about each pod).
func (e *Env) AdaptPod(pod *corev1.Pod) {
	pod.Spec.DNSPolicy = corev1.DNSDefault
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		// The claims stay: they are not the node's CPUs or hugepages.
		c.Image, c.ImagePullPolicy, c.Resources = PauseImage, corev1.PullNever, corev1.ResourceRequirements{Claims: c.Resources.Claims}
	}
}

// Kubectl is a kubectl matching the cluster: v1.37.2 from the cache of
// hack/build-node-bins.sh when it is there, else "kubectl" from the PATH.
func (e *Env) Kubectl() string {
	p := filepath.Join(e.opts.NodeBinDir, "kubectl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "kubectl"
}

// FS is path inside a real node's mount namespace (one of its own
// directories), as seen from the host; "" on a stand-in node.
func (n *Node) FS(path string) string {
	if n.real == nil {
		return ""
	}
	return n.real.nodeFS(path)
}

// BinDir holds the kuryr-dpdk binaries the environment runs (and put into
// the kuryr-dpdk image).
func (e *Env) BinDir() string { return e.binDir }

// UIODevice is the uio device ("uio0") of the device at addr on node n,
// while it is bound to uio_pci_generic (internal/pci on its simulated sysfs).
func (n *Node) UIODevice(addr string) (string, error) {
	return pci.New(n.SysfsRoot).UIODevice(addr)
}
