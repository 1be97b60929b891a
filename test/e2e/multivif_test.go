package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// linkAddrs lists the links of the namespace at path (aio.Links).
func linkAddrs(t *testing.T, path string) map[string]aio.Link {
	t.Helper()
	links, err := aio.Links(path)
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// A pod asking for the management network and a DPDK interface gets eth0,
// net1 (kernel netdevs with the Neutron addresses in its namespace) and
// dpdk0 (a hot-plugged device bound to uio_pci_generic), reported in the
// CNI result containerd got from kuryr-cni (its libcni cache on the node),
// the device-info file and the network-status annotation; the kubelet
// reports the pod's sandbox, network included, ready.
func TestMultiVIFPod(t *testing.T) {
	const namespace = "e2e-multivif"
	ctx := setup(t, namespace, 3*time.Minute)
	pod := createPod(t, ctx, dpdkPod(namespace, "multi"))
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	pod = getPod(t, ctx, namespace, pod.Name)
	node := env.Node(pod.Spec.NodeName)
	eth0, _, dpdk0 := checkMultiVIFPod(t, ctx, pod)
	if ip := strings.Split(eth0.IPs[0], "/")[0]; pod.Status.PodIP != ip {
		t.Errorf("pod IP %s, want eth0's %s", pod.Status.PodIP, ip)
	}

	// The DPDK device is bound to uio_pci_generic, its netdev gone.
	addr := dpdk0.PCIAddress
	if dpdk0.BoundDriver != pci.DriverUIO || dpdk0.OriginalDriver != pci.DriverVirtioPCI {
		t.Errorf("dpdk0 bound %q, original %q; want %s and %s", dpdk0.BoundDriver, dpdk0.OriginalDriver, pci.DriverUIO, pci.DriverVirtioPCI)
	}
	if drv, err := pci.New(node.SysfsRoot).Driver(addr); err != nil || drv != pci.DriverUIO {
		t.Errorf("sysfs says %s is bound to %q (%v), want %s", addr, drv, err, pci.DriverUIO)
	}
	for name, v := range linkAddrs(t, node.NetNS) {
		if strings.EqualFold(v.MAC, dpdk0.MAC) {
			t.Errorf("node %s still has netdev %s with dpdk0's MAC", node.Name, name)
		}
	}

	// containerd called kuryr-cni, and the result it got names the device.
	call := containerdADD(t, ctx, pod)
	var pciID string
	var ifnames []string
	for _, i := range call.Result.Interfaces {
		ifnames = append(ifnames, i.Name)
		if i.Name == "dpdk0" {
			pciID = i.PciID
		}
	}
	if pciID != addr {
		t.Errorf("CNI result interfaces %v: dpdk0 pciID %q, want %s", ifnames, pciID, addr)
	}

	// A device-info file (NPWG, type pci) for it.
	var devinfo []string
	_ = filepath.WalkDir(node.DevinfoDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var di nadv1.DeviceInfo
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &di) == nil && di.Pci != nil && di.Pci.PciAddress == addr {
			if di.Type != "pci" || di.Version != "1.1.0" {
				t.Errorf("device-info %s: type %q version %q, want pci 1.1.0", path, di.Type, di.Version)
			}
			devinfo = append(devinfo, path)
		}
		return nil
	})
	if len(devinfo) != 1 {
		t.Errorf("device-info files for %s under %s: %v, want one", addr, node.DevinfoDir, devinfo)
	}

	// network-status lists all three.
	_, seen := networkStatus(t, pod)
	if !seen["eth0"].Default || !slices.Contains(seen["eth0"].IPs, pod.Status.PodIP) {
		t.Errorf("network-status eth0 %+v: want default with %s", seen["eth0"], pod.Status.PodIP)
	}
	if s := seen["net1"]; s.Name != namespace+"/"+aio.MgmtNAD || len(s.IPs) == 0 {
		t.Errorf("network-status net1 %+v: want %s/%s with IPs", s, namespace, aio.MgmtNAD)
	}
	if s := seen["dpdk0"]; s.Name != namespace+"/"+aio.DataPlaneNAD || s.DeviceInfo == nil || s.DeviceInfo.Pci == nil || s.DeviceInfo.Pci.PciAddress != addr {
		t.Errorf("network-status dpdk0 %+v: want %s/%s with device-info pci %s", s, namespace, aio.DataPlaneNAD, addr)
	}

	// The kubelet says the sandbox, network included, is ready.
	if c := aio.PodCondition(pod, corev1.PodReadyToStartContainers); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("pod condition PodReadyToStartContainers %+v, want True", c)
	} else {
		t.Logf("sandbox and network ready %s after the pod's creation (the kubelet's PodReadyToStartContainers, 1 s resolution)",
			c.LastTransitionTime.Sub(pod.CreationTimestamp.Time))
	}

	deleteAndWait(t, ctx, namespace, pod.Name)
	requireNoLeaks(t, ctx)
}

// Pods on two nodes reach each other over eth0 and over the management
// network (the fabric joins the node VMs' NICs, as the cloud's network does).
func TestPodsOnTwoNodesReachEachOther(t *testing.T) {
	const namespace = "e2e-reach"
	ctx := setup(t, namespace, 3*time.Minute)
	var names []string
	for i, node := range []string{env.Nodes[0].Name, env.Nodes[1].Name} {
		p := dpdkPod(namespace, fmt.Sprintf("peer-%d", i))
		p.Annotations[v1alpha1.NetworksAnnotation] = aio.MgmtNAD
		p.Spec.NodeName = node
		names = append(names, createPod(t, ctx, p).Name)
	}
	waitReady(t, ctx, namespace, 2*time.Minute, names...)
	server, client := getPod(t, ctx, namespace, names[0]), getPod(t, ctx, namespace, names[1])
	serverNS := podNetNS(t, ctx, namespace, server.Name)
	clientNS := podNetNS(t, ctx, namespace, client.Name)
	for _, ifc := range kuryrPod(t, ctx, namespace, server.Name).Status.Interfaces {
		ip := strings.Split(ifc.IPs[0], "/")[0]
		var l net.Listener
		inPodNS(t, serverNS, func() (err error) { l, err = net.Listen("tcp", net.JoinHostPort(ip, "0")); return err })
		go func() {
			if c, err := l.Accept(); err == nil {
				_ = c.Close()
			}
		}()
		inPodNS(t, clientNS, func() error {
			c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
			if err != nil {
				return fmt.Errorf("%s of %s (%s) unreachable from %s on %s: %w", ifc.IfName, server.Spec.NodeName, ip, client.Name, client.Spec.NodeName, err)
			}
			return c.Close()
		})
		_ = l.Close()
	}
	deleteAndWait(t, ctx, namespace, names...)
	requireNoLeaks(t, ctx)
}

func inPodNS(t *testing.T, path string, f func() error) {
	t.Helper()
	n, err := ns.GetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// podNetNS is a path to the network namespace of a running pod
// (aio.Env.PodNetNS: /proc/<pid>/ns/net of one of its processes).
func podNetNS(t *testing.T, ctx context.Context, namespace, name string) string {
	t.Helper()
	p, err := env.PodNetNS(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// containerdADD is the ADD of pod's eth0 containerd made
// (aio.Env.ContainerdADD), printed to the log with the runtime's version.
func containerdADD(t *testing.T, ctx context.Context, pod *corev1.Pod) aio.CNICall {
	t.Helper()
	call, err := env.ContainerdADD(pod)
	if err != nil {
		t.Fatal(err)
	}
	runtime := containerRuntime(t, ctx, pod.Spec.NodeName)
	t.Logf("%s called %s", runtime, call)
	fmt.Fprintf(os.Stderr, "e2e: %s on %s called %s for pod %s/%s\n", runtime, pod.Spec.NodeName, call, pod.Namespace, pod.Name)
	return call
}

// containerRuntime is the runtime the node's kubelet reports
// (containerd://2.x).
func containerRuntime(t *testing.T, ctx context.Context, node string) string {
	t.Helper()
	n, err := env.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Status.NodeInfo.ContainerRuntimeVersion
}

// checkMultiVIFPod checks a running pod of dpdkPod: its KuryrPod has eth0
// and net1 (env.MgmtDriver) and dpdk0 (nested-dpdk, at the PCI address
// where the node has its port), which it returns; eth0 and net1 are in the
// pod's namespace with their ports' MACs and addresses, and dpdk0 has no
// netdev there.
func checkMultiVIFPod(t *testing.T, ctx context.Context, pod *corev1.Pod) (eth0, net1, dpdk0 v1alpha1.InterfaceStatus) {
	t.Helper()
	kp := kuryrPod(t, ctx, pod.Namespace, pod.Name)
	byName := map[string]v1alpha1.InterfaceStatus{}
	for _, i := range kp.Status.Interfaces {
		byName[i.IfName] = i
	}
	eth0, net1, dpdk0 = byName["eth0"], byName["net1"], byName["dpdk0"]
	if len(byName) != 3 || eth0.Driver != env.MgmtDriver || net1.Driver != env.MgmtDriver || dpdk0.Driver != v1alpha1.DriverNestedDPDK {
		t.Fatalf("KuryrPod interfaces %+v: want eth0 and net1 (%s) and dpdk0 (nested-dpdk)", kp.Status.Interfaces, env.MgmtDriver)
	}
	node := env.Node(pod.Spec.NodeName)
	if addr := dpdk0.PCIAddress; addr == "" || addr != node.PCIAddress(dpdk0.PortID) {
		t.Fatalf("dpdk0 PCI address %q, the node has port %s at %q", addr, dpdk0.PortID, node.PCIAddress(dpdk0.PortID))
	}
	links := linkAddrs(t, podNetNS(t, ctx, pod.Namespace, pod.Name))
	for _, want := range []v1alpha1.InterfaceStatus{eth0, net1} {
		got, ok := links[want.IfName]
		if !ok {
			t.Errorf("pod namespace has no %s (links: %v)", want.IfName, links)
			continue
		}
		if !strings.EqualFold(got.MAC, want.MAC) {
			t.Errorf("%s MAC %s, want the Neutron port's %s", want.IfName, got.MAC, want.MAC)
		}
		for _, ip := range want.IPs {
			if !slices.Contains(got.Addrs, ip) {
				t.Errorf("%s has %v, want %s", want.IfName, got.Addrs, ip)
			}
		}
	}
	if _, ok := links["dpdk0"]; ok {
		t.Errorf("pod namespace has a dpdk0 netdev; a DPDK device has none")
	}
	return eth0, net1, dpdk0
}

// networkStatus parses pod's network-status annotation, in order and by
// interface.
func networkStatus(t *testing.T, pod *corev1.Pod) ([]nadv1.NetworkStatus, map[string]nadv1.NetworkStatus) {
	t.Helper()
	raw := pod.Annotations[v1alpha1.NetworkStatusAnnotation]
	var status []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &status); err != nil {
		t.Fatalf("network-status annotation %q: %v", raw, err)
	}
	seen := map[string]nadv1.NetworkStatus{}
	for _, s := range status {
		seen[s.Interface] = s
	}
	return status, seen
}
