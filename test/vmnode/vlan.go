package vmnode

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/neutrontest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmenv"
)

// taggedFilter selects, once the test has set what to look for, the frames
// vmenv.IsTaggedFrom selects. The host's counter calls match from its own
// goroutine.
type taggedFilter struct {
	mu     sync.Mutex
	vlanID int
	mac    net.HardwareAddr
	ip     net.IP
}

func (f *taggedFilter) set(vlanID int, mac net.HardwareAddr, ip net.IP) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vlanID, f.mac, f.ip = vlanID, mac, ip
}

func (f *taggedFilter) match(frame []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mac != nil && vmenv.IsTaggedFrom(frame, f.vlanID, f.mac, f.ip)
}

// NestedVLANRealNeutron is nested-vlan end to end against real Neutron:
// neutron-server holds the workers and pods networks and the node VM's
// port, the parent of a trunk bound to the VM's host; the Nova stand-in
// serves the VM's server; the L2 agent stand-in wires the trunk's subports
// as they come (vmenv.StartNeutronCloud). The node VM boots with the
// kubelet and containerd, gets its NIC on the trunk parent port (a
// virtio-net device with the port's MAC, as Nova's boot gives it, whose
// frames the host sees), and runs the kuryr-daemon DaemonSet with that NIC
// as the parent; kuryr-controller runs in process as the primary CNI's
// controller (eth0: nested-vlan on the pods subnet).
//
// A pod (the pause image) then gets eth0: the controller created its port
// in Neutron and made it a subport of the trunk with a VLAN ID, the agent
// stand-in bound it (trunk:subport, the VM's host) and made it ACTIVE, the
// daemon made the 802.1Q sub-interface with that ID, the port's MAC and
// IP. Traffic from the pod's network namespace (a ping of the subnet's
// gateway) leaves the VM's trunk NIC tagged with the subport's VLAN ID,
// from the port's MAC and IP: the host counts those frames. The pod
// deleted, the subport leaves the trunk and the port is deleted in
// Neutron, and nothing is left on the pods network or the trunk (every
// lookup's error fails the test).
//
// It fails, never skips, without neutron-server or the node VM under
// KURYR_TEST_STRICT=1 (as under KURYR_TEST_NEUTRON=1 and KURYR_TEST_VM=1).
func NestedVLANRealNeutron(t *testing.T) {
	if os.Getenv(netnstest.StrictEnv) == "1" {
		t.Setenv(neutrontest.RequireEnv, "1")
		t.Setenv(qemu.RequireEnv, "1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	qemu.RequireGuest(t)
	// Neutron first: without it the test ends before the slow parts.
	var tagged taggedFilter
	hp := &novastandin.QEMUHotplug{Match: tagged.match}
	cloud := vmenv.StartNeutronCloud(ctx, t, NodeName, hp)
	cp := RequireControlPlane(t)
	kuryr := kuryrImage(t, RepoRoot(t))
	seq := runSeq.Add(1)
	t.Logf("Neutron at %s: trunk %s on the VM's port %s (%s), server %s on host %s",
		cloud.Neutron.URL, cloud.TrunkID, cloud.ParentPort.ID, cloud.ParentPort.MACAddress, cloud.ServerID, cloud.Host)

	providerID := "openstack:///" + cloud.ServerID
	n := StartNode(ctx, t, NodeOptions{ProviderID: providerID, Images: []string{kuryr}})
	n.LogBootTimings()
	hp.VM = n.VM
	// The VM's NIC on its own port: plugged as the server's boot would
	// have it (the Nova stand-in attaches only), up as the node's network
	// configuration leaves it.
	if err := hp.Plug(ctx, cloud.ServerID, novastandin.Device{PortID: cloud.ParentPort.ID, MAC: cloud.ParentPort.MACAddress}); err != nil {
		t.Fatal(err)
	}
	trunkNIC := n.linkByMAC(cloud.ParentPort.MACAddress)
	n.Sh("/bin/ip link set dev " + trunkNIC + " up")
	nic, _ := hp.NIC(cloud.ParentPort.ID)
	vmenv.StartController(ctx, t, cp.Admin, aio.Scheme, cloud, vmenv.ControllerOptions{ClusterID: fmt.Sprintf("vmvlan-%d", seq), Primary: true})
	n.DeployDaemon("--parent-interface=" + trunkNIC)

	c, err := client.New(cp.Admin, client.Options{Scheme: aio.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("vmvlan-%d", seq)
	Must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(2)),
			Containers:                    []corev1.Container{{Name: "app", Image: aio.PauseImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
	created := time.Now()
	Must(t, c.Create(ctx, pod))
	running := n.WaitContainerRunning(ns, pod.Name, 3*time.Minute)
	t.Logf("timings: pod created → container running %v", running.Sub(created).Round(time.Millisecond))

	// The controller's record and Neutron agree: a port on the pods
	// subnet, a subport of the trunk with the recorded VLAN ID, bound by
	// the agent to the VM's host and ACTIVE.
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(pod), pod))
	var kp v1alpha1.KuryrPod
	Must(t, c.Get(ctx, client.ObjectKeyFromObject(pod), &kp))
	i := slices.IndexFunc(kp.Status.Interfaces, func(s v1alpha1.InterfaceStatus) bool { return s.IfName == "eth0" })
	if i < 0 {
		t.Fatalf("KuryrPod %s/%s records no eth0: %+v", ns, pod.Name, kp.Status.Interfaces)
	}
	eth0 := kp.Status.Interfaces[i]
	if eth0.Driver != v1alpha1.DriverNestedVLAN || eth0.VLANID < 1 || eth0.VLANID > 4094 || eth0.PortID == "" {
		t.Fatalf("eth0 of pod %s: %+v, want nested-vlan with a port and a VLAN ID", pod.Name, eth0)
	}
	port, err := cloud.Client.GetPort(ctx, eth0.PortID)
	if err != nil {
		t.Fatal(err)
	}
	podIP := pod.Status.PodIP
	if port.Status != "ACTIVE" || port.DeviceOwner != neutrontest.TrunkSubportOwner || port.HostID != cloud.Host ||
		port.NetworkID != cloud.Pods.NetworkID || !strings.EqualFold(port.MACAddress, eth0.MAC) ||
		len(port.FixedIPs) != 1 || port.FixedIPs[0].IPAddress != podIP {
		t.Fatalf("Neutron's port %s of eth0: %+v; want ACTIVE, %s, host %s, network %s, MAC %s, IP %s",
			port.ID, port, neutrontest.TrunkSubportOwner, cloud.Host, cloud.Pods.NetworkID, eth0.MAC, podIP)
	}
	subs, err := cloud.Client.ListSubports(ctx, cloud.TrunkID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(subs, func(s openstack.Subport) bool {
		return s.PortID == port.ID && s.SegmentationType == "vlan" && s.SegmentationID == eth0.VLANID
	}) {
		t.Fatalf("trunk %s has subports %+v, want port %s on VLAN %d", cloud.TrunkID, subs, port.ID, eth0.VLANID)
	}
	t.Logf("Neutron: port %s (MAC %s, IP %s) is subport VLAN %d of trunk %s, %s on %s, ACTIVE",
		port.ID, port.MACAddress, podIP, eth0.VLANID, cloud.TrunkID, port.DeviceOwner, port.HostID)

	// The guest: eth0 in the pod's network namespace is the 802.1Q link
	// with that ID, the port's MAC and IP.
	netns, link := n.PodNetNS(podIP)
	if !strings.Contains(link, fmt.Sprintf("vlan protocol 802.1Q id %d ", eth0.VLANID)) ||
		!strings.Contains(strings.ToLower(link), "link/ether "+strings.ToLower(port.MACAddress)) {
		t.Fatalf("eth0 of pod %s (netns %s): %s; want 802.1Q id %d with MAC %s", pod.Name, netns, link, eth0.VLANID, port.MACAddress)
	}
	t.Logf("guest: eth0 in %s: %s", netns, link)

	// Traffic: the pod pings its gateway; the VM's trunk NIC sends the
	// ARP requests (and pings, if answered) tagged with the VLAN ID.
	mac, err := net.ParseMAC(port.MACAddress)
	if err != nil {
		t.Fatal(err)
	}
	tagged.set(eth0.VLANID, mac, net.ParseIP(podIP))
	gw := cloud.Pods.GatewayIP
	var out string
	err = wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Second, true, func(context.Context) (bool, error) {
		// Nothing answers on the host's side: the ping fails, its ARP
		// requests are what counts.
		out = n.Sh(fmt.Sprintf("/bin/ip netns exec %s ping -c 2 -W 1 %s 2>&1 || true", netns, gw))
		return nic.Matched() > 0, nil
	})
	if err != nil {
		t.Fatalf("the host saw no frame tagged VLAN %d from %s (%s) on the VM's trunk NIC (%d frames in all; ping: %s): %v",
			eth0.VLANID, port.MACAddress, podIP, nic.Frames(), strings.TrimSpace(out), err)
	}
	t.Logf("host: %d frames tagged VLAN %d from %s (%s) on the VM's trunk NIC %s (%d frames in all)",
		nic.Matched(), eth0.VLANID, port.MACAddress, podIP, trunkNIC, nic.Frames())

	// Deleting the pod: the subport leaves the trunk, the port goes, and
	// nothing is left.
	deleted := time.Now()
	Must(t, c.Delete(ctx, pod))
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		perr := c.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		kerr := c.Get(ctx, client.ObjectKeyFromObject(pod), &v1alpha1.KuryrPod{})
		gone, err := cloud.PortGone(ctx, port.ID)
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("pod: %v, KuryrPod: %v, port %s gone: %v", perr, kerr, port.ID, gone)
		return apierrors.IsNotFound(perr) && apierrors.IsNotFound(kerr) && gone, nil
	})
	if err != nil {
		t.Fatalf("after the pod's deletion: %s: %v", last, err)
	}
	t.Logf("timings: pod deleted → pod, KuryrPod and Neutron port gone %v", time.Since(deleted).Round(time.Millisecond))
	left, err := cloud.Leaks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("left in Neutron after the pod's deletion: %s", strings.Join(left, "; "))
	}
}

// linkByMAC waits (up to 30 s) for the guest's netdev with mac and
// returns its name.
func (n *Node) linkByMAC(mac string) string {
	n.t.Helper()
	var name string
	err := wait.PollUntilContextTimeout(n.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		name = strings.TrimSpace(n.Sh(fmt.Sprintf(`for d in /sys/class/net/*; do
	[ "$(cat $d/address)" = %q ] && echo "${d##*/}"
done; true`, strings.ToLower(mac))))
		return name != "", nil
	})
	if err != nil {
		n.t.Fatalf("no netdev with MAC %s in the guest: %v", mac, err)
	}
	return name
}
