package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var (
	env    *testenv.Env
	binDir string // holds the real kuryr-cni shim, built once
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kuryr-daemon-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	// The shim, and a real plugin to chain it after (CNI 1.1 prevResult).
	for _, pkg := range []string{"../../cmd/kuryr-cni", "github.com/containernetworking/plugins/plugins/main/loopback"} {
		if _, err := testenv.GoBuild(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binDir = dir
	return testenv.Main(m, &env, testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds", "../../deploy/third-party"}})
}

var scheme = func() *runtime.Scheme {
	s, err := cmdutil.Scheme()
	if err != nil {
		panic(err)
	}
	return s
}()

var seq atomic.Int64

const (
	nodeIP    = "10.0.0.10"
	dpdkMAC   = "fa:16:3e:00:00:77"
	dpdkPCI   = "0000:01:00.0"
	eth0MAC   = "fa:16:3e:00:00:55"
	sandboxID = "0123456789abcdef0123456789abcdef"
)

// node is one simulated node VM: its namespace with the NIC, its PCI bus,
// its daemon, and the API objects of one pod on it.
type node struct {
	t       *testing.T
	ctx     context.Context
	name    string
	c       client.Client
	nodeNS  ns.NetNS
	podNS   ns.NetNS
	sim     *pcisim.Sim
	dir     string
	socket  string
	ckptDir string
	// draCkptDir is the DRA driver's checkpoint directory the daemons
	// read (--dra-checkpoint-dir).
	draCkptDir string
	cni        *libcni.CNIConfig
	list       *libcni.NetworkConfigList
	pod        *corev1.Pod
	// specEdit and statusEdit, when set, change the KuryrPod spec and
	// status createPod makes.
	specEdit   func(*v1alpha1.KuryrPodSpec)
	statusEdit func(*v1alpha1.KuryrPodStatus)
	// attachedEdit, when set, changes the entries createPod records in the
	// node's KuryrNode for the pod's DPDK ports (as the controller records
	// a port it attached for the pod): an attack test drops or alters them.
	attachedEdit func(podUID types.UID, devs []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice
	// daemon is the daemon startDaemon last started.
	daemon *Daemon
	// deviceTimeout, when set, is the daemons' --device-timeout (else the
	// timeout given to startDaemon).
	deviceTimeout time.Duration
	// refusalsExpected: a failed start-up reconcile is part of the test
	// (a permission taken away), not a failure of it.
	refusalsExpected bool
}

func newNode(t *testing.T) *node {
	t.Helper()
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := &node{t: t, ctx: ctx, name: fmt.Sprintf("dnode-%d", seq.Add(1))}
	n.dir = t.TempDir()
	n.socket = filepath.Join(n.dir, "cni.sock")
	n.ckptDir = filepath.Join(n.dir, "checkpoints")
	n.draCkptDir = filepath.Join(n.dir, "dra-checkpoints")

	// The VM: its NIC holds the node's InternalIP.
	n.nodeNS = netnstest.NewNS(t)
	netnstest.AddParent(t, n.nodeNS, "ens3", 1500)
	err := n.nodeNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("ens3")
		if err != nil {
			return err
		}
		addr, _ := netlink.ParseAddr(nodeIP + "/24")
		return netlink.AddrAdd(l, addr)
	})
	must(t, err)
	n.podNS = netnstest.NewNS(t)

	n.sim, err = pcisim.Start(ctx, filepath.Join(n.dir, "root"))
	must(t, err)
	t.Cleanup(func() { _ = n.sim.Close() })

	n.c, err = client.New(env.Config, client.Options{Scheme: scheme})
	must(t, err)
	nodeObj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
	must(t, n.c.Create(ctx, nodeObj))
	nodeObj.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP}}
	must(t, n.c.Status().Update(ctx, nodeObj))

	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kuryr","plugins":[{"type":"kuryr-cni","daemonSocket":%q,
		"capabilities":{"io.kubernetes.cri.pod-annotations":true}}]}`, n.socket)
	n.list, err = libcni.NetworkConfFromBytes([]byte(conf))
	must(t, err)
	// The node's own CNI binary directory: the shims and the node-local
	// file naming this node's socket.
	bin := filepath.Join(n.dir, "bin")
	must(t, testenv.NodeCNIBin(binDir, bin, n.socket))
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(n.dir, "cache"), nil)
	return n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startDaemon runs a daemon for the node (primary mode) until the returned
// stop is called.
func (n *node) startDaemon(timeout time.Duration) (stop func()) {
	return n.startDaemonMode(timeout, true)
}

func (n *node) startDaemonMode(timeout time.Duration, primary bool) (stop func()) {
	return n.startDaemonAs(env.Config, timeout, primary)
}

func (n *node) startDaemonAs(cfg *rest.Config, timeout time.Duration, primary bool) (stop func()) {
	n.t.Helper()
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Cache: CacheOptions(n.name),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	must(n.t, err)
	opts := Defaults()
	opts.NodeName, opts.Socket, opts.SysfsRoot = n.name, n.socket, n.sim.Root()
	opts.CheckpointDir, opts.DevInfoRoot, opts.NodeNetns = n.ckptDir, n.dir, n.nodeNS.Path()
	opts.DRACheckpointDir = n.draCkptDir
	opts.Primary, opts.InterfacesTimeout, opts.DeviceTimeout = primary, timeout, timeout
	if n.deviceTimeout != 0 {
		opts.DeviceTimeout = n.deviceTimeout
	}
	must(n.t, opts.Validate())
	d, err := New(opts, mgr.GetClient(), mgr.GetAPIReader(), nil, ctrl.Log)
	must(n.t, err)
	ctx, cancel := context.WithCancel(n.ctx)
	must(n.t, d.Watch(ctx, mgr.GetCache()))
	ln, err := cniapi.Listen(n.socket)
	must(n.t, err)
	srv := cniapi.NewServer(d, cniapi.WithReadiness(d.Ready))
	done := make(chan struct{}, 5)
	go func() { _ = mgr.Start(ctx); done <- struct{}{} }()
	go func() { _ = srv.Serve(ctx, ln); done <- struct{}{} }()
	go func() { _ = d.KeepPoolIdle(ctx); done <- struct{}{} }()
	go func() { _ = d.LabelNode(ctx); done <- struct{}{} }()
	go func() {
		if err := d.ReconcileAtStart(ctx, mgr.GetCache()); err != nil && ctx.Err() == nil && !n.refusalsExpected {
			n.t.Errorf("start-up reconcile: %v", err)
		}
		done <- struct{}{}
	}()
	n.daemon = d
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		// controller-runtime v0.25.2 cannot stop a manager whose caches
		// never synced (its start loop spins on the closed context): let
		// them sync first. A test that took a permission away gives it
		// back before this runs.
		if n.refusalsExpected {
			sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
			mgr.GetCache().WaitForCacheSync(sctx)
			scancel()
		}
		cancel()
		for range cap(done) {
			<-done
		}
	}
	n.t.Cleanup(stop)
	return stop
}

// createPod makes the pod and the KuryrPod the controller would make for
// it: eth0 (MACVLAN, default route, its own port) and net1 (DPDK, its own
// port, recorded as attached for the pod in the node's KuryrNode first),
// in the given state.
func (n *node) createPod(name string, state v1alpha1.InterfaceState) (*corev1.Pod, *v1alpha1.KuryrPod) {
	n.t.Helper()
	return n.createPodMACs(name, state, eth0MAC, dpdkMAC)
}

// createPodMACs is createPod with the ports' MACs given.
func (n *node) createPodMACs(name string, state v1alpha1.InterfaceState, eth0MAC, dpdkMAC string) (*corev1.Pod, *v1alpha1.KuryrPod) {
	n.t.Helper()
	name = n.podName(name)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	must(n.t, n.c.Create(n.ctx, p))
	kp := &v1alpha1.KuryrPod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{v1alpha1.NodeLabel: n.name}},
		Spec: v1alpha1.KuryrPodSpec{PodUID: p.UID, NodeName: n.name, Interfaces: []v1alpha1.InterfaceRequest{
			{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s-pod", DefaultRoute: true},
			{IfName: "net1", Network: "default/dataplane", Driver: v1alpha1.DriverNestedDPDK, SubnetID: "s-dp", DPDKDriver: v1alpha1.DPDKDriverUIOPCIGeneric},
		}},
	}
	if n.specEdit != nil {
		n.specEdit(&kp.Spec)
	}
	must(n.t, n.c.Create(n.ctx, kp))
	kp.Status = v1alpha1.KuryrPodStatus{Conditions: []metav1.Condition{{
		Type: v1alpha1.ConditionSpecValid, Status: metav1.ConditionTrue, Reason: "Planned", ObservedGeneration: kp.Generation, LastTransitionTime: metav1.Now(),
	}}, Interfaces: []v1alpha1.InterfaceStatus{
		{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, PortID: "port-eth0-" + name, MAC: eth0MAC, IPs: []string{"10.1.0.5/16"}, MTU: 1450,
			Gateway: "10.1.0.1", Routes: []v1alpha1.Route{{Dst: "0.0.0.0/0", Gateway: "10.1.0.1"}}, State: state},
		{IfName: "net1", Driver: v1alpha1.DriverNestedDPDK, Network: "default/dataplane", PortID: "port-" + name, MAC: dpdkMAC,
			IPs: []string{"10.3.0.7/24"}, MTU: 1450, Gateway: "10.3.0.1", State: state},
	}}
	if n.statusEdit != nil {
		n.statusEdit(&kp.Status)
	}
	var devs []v1alpha1.DPDKDevice
	for _, ir := range kp.Spec.Interfaces {
		st := findStatus(kp, ir.IfName)
		if ir.Driver == v1alpha1.DriverNestedDPDK && ir.ResourceClaim == nil && st != nil {
			devs = append(devs, v1alpha1.DPDKDevice{PortID: st.PortID, MAC: st.MAC, NetworkID: "net-dp", SubnetID: ir.SubnetID,
				State: v1alpha1.DPDKDeviceInUse, Owner: v1alpha1.DPDKOwnerPod + string(p.UID), Unpooled: true})
		}
	}
	if n.attachedEdit != nil {
		devs = n.attachedEdit(p.UID, devs)
	}
	n.recordAttached(devs...)
	must(n.t, n.c.Status().Update(n.ctx, kp))
	n.pod = p
	return p, kp
}

// recordAttached writes devs into the node's KuryrNode status.dpdkDevices,
// each replacing the entry of its port, as the controller records a port
// it attached.
func (n *node) recordAttached(devs ...v1alpha1.DPDKDevice) {
	n.t.Helper()
	if len(devs) == 0 {
		return
	}
	n.editKuryrNode(func(st *v1alpha1.KuryrNodeStatus) {
		for _, d := range devs {
			st.DPDKDevices = slices.DeleteFunc(st.DPDKDevices, func(o v1alpha1.DPDKDevice) bool { return o.PortID == d.PortID })
			st.DPDKDevices = append(st.DPDKDevices, d)
		}
	})
}

func (n *node) rt() *libcni.RuntimeConf { return rtFor(n.pod, sandboxID, n.podNS.Path()) }

// rtFor is the runtime configuration of the eth0 call of a pod's sandbox.
func rtFor(pod *corev1.Pod, sandbox, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: sandbox, NetNS: netns, IfName: "eth0",
		Args: [][2]string{
			{"K8S_POD_NAMESPACE", pod.Namespace}, {"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", sandbox}, {"K8S_POD_UID", string(pod.UID)}, {"IgnoreUnknown", "1"},
		},
		CapabilityArgs: map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{}},
	}
}

// podName makes a test's pod name unique on the shared API server.
func (n *node) podName(name string) string { return name + "-" + n.name }

func (n *node) kuryrPod(name string) *v1alpha1.KuryrPod {
	n.t.Helper()
	var kp v1alpha1.KuryrPod
	must(n.t, n.c.Get(n.ctx, types.NamespacedName{Namespace: "default", Name: n.podName(name)}, &kp))
	return &kp
}

// podAddrs lists the IPv4 addresses of ifName in the pod namespace ("" when
// the link is absent).
func (n *node) podLink(ifName string) (mac string, addrs []string, defaultVia string) {
	n.t.Helper()
	// A link that is absent is "" (a DEL's work); a lookup that fails
	// fails the test, not read as nothing there.
	must(n.t, n.podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		as, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range as {
			addrs = append(addrs, a.IPNet.String())
		}
		rs, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				defaultVia = r.Gw.String()
			}
		}
		return nil
	}))
	return mac, addrs, defaultVia
}
