package aio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

// NodeNIC is the name of the VM's NIC inside a node's namespace.
const NodeNIC = "ens3"

// fabricBridge joins the nodes' NICs (and hot-plugged NICs) in the fabric
// namespace; it holds the subnets' gateway addresses.
const fabricBridge = "fabric0"

// fabricBridgeMAC is the bridge's own address, set when it is made. A Linux
// bridge without one takes the lowest MAC of its ports and changes it as
// ports come and go; hot-plugged NICs add and remove ports all the time, and
// each change of the gateways' MAC flushed the fabric's neighbours and left
// the nodes sending to the old MAC until their ARP entries went stale: 15–25 s
// in which a node's kubelet and kuryr-daemon could not reach the API server
// (its node NotReady in the middle of a test). A set address never changes.
var fabricBridgeMAC = net.HardwareAddr{0x02, 0x00, 0x0a, 0x00, 0x00, 0x01}

// hotplugDelay is how long after Nova's attach the device appears in the
// VM, as measured on a real guest (0.2–0.5 s).
const hotplugDelay = 300 * time.Millisecond

// Node is one simulated node VM.
type Node struct {
	Name  string
	Index int
	// Dir holds the node's files (sysfs root, checkpoints, device-info, CNI
	// cache and socket).
	Dir string
	// NetNS is the path of the namespace holding the VM's NIC (NodeNIC).
	NetNS string
	// SysfsRoot is the root the simulated PCI bus lives under (SysfsRoot/sys).
	SysfsRoot string
	// DevinfoDir is where the daemon writes NPWG device-info files (the
	// node's /var/run/k8s.cni.cncf.io/devinfo/cni).
	DevinfoDir  string
	devinfoRoot string
	// Socket is the node's kuryr-daemon CNI socket.
	Socket string
	// Server is the node's Nova server and its trunk parent port.
	Server cloudsim.SeededServer
	// PCI is the simulated PCI bus.
	PCI *pcisim.Sim
	// Daemon is the node's kuryr-daemon process (nil with NoKuryr, and on a
	// real node, where it is the DaemonSet's pod: Env.DaemonPod).
	Daemon *Process
	// DaemonProbes is the base URL (http://127.0.0.1:port) of Daemon's
	// /healthz (liveness) and /readyz (readiness), the endpoints the
	// DaemonSet's probes ask.
	DaemonProbes string
	// Kubelet is the node's kubelet stand-in (nil on a real node).
	Kubelet *Kubelet

	real    *realNode // nil on a stand-in node
	deleted atomic.Bool

	fabric string
	mu     sync.Mutex
	slots  map[string]string // Neutron port ID → PCI address
	plug   map[string]string // Neutron port ID → "pending", "adding", "plugged" or "failed"
	// unplugging are the PCI addresses of detached ports whose device is
	// still on the bus (being added, or being removed): no attach takes
	// one before its device is gone.
	unplugging map[string]bool
	history    []HotplugEvent
	// netdevQ are the netdev events the simulated bus reported that
	// mirrorNetdevs has not applied yet, in order; netdevKick wakes it.
	netdevMu   sync.Mutex
	netdevQ    []pcisim.NetdevEvent
	netdevKick chan struct{}
	logf       func(format string, args ...any) // the environment's log
}

// HotplugEvent is one thing that happened to a node's simulated hardware.
type HotplugEvent struct {
	Time time.Time
	// Kind is "attach" and "detach" (Nova), "netdev-up" (bound to
	// virtio-pci) and "netdev-down" (unbound, bound to a DPDK driver or
	// removed).
	Kind   string
	Addr   string
	PortID string
	MAC    string
}

func (n *Node) record(ev HotplugEvent) {
	ev.Time = time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.history = append(n.history, ev)
}

// History returns what happened to the node's hardware, oldest first.
func (n *Node) History() []HotplugEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]HotplugEvent(nil), n.history...)
}

// IP is the node's InternalIP (its parent port's address).
func (n *Node) IP() string { return n.Server.ParentPort.FixedIPs[0].IPAddress }

// PCIAddress returns the PCI address of the device Nova attached for port,
// "" when none is.
func (n *Node) PCIAddress(portID string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.slots[portID]
}

// devices returns the node's hot-plugged devices: PCI address by Neutron
// port ID.
func (n *Node) devices() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.slots)
}

// Deleted says whether the node was deleted (DeleteNode).
func (n *Node) Deleted() bool { return n.deleted.Load() }

func (e *Env) startNodes(ctx context.Context) error {
	fabric, err := createNetNS(e.nsName("fabric"))
	if err != nil {
		return err
	}
	e.fabric = fabric
	e.defer_(func() error { return removeNetNS(fabric) })
	err = inNS(fabric, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = fabricBridge
		la.HardwareAddr = fabricBridgeMAC
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("add bridge %s: %w", fabricBridge, err)
		}
		br, err := netlink.LinkByName(fabricBridge)
		if err != nil {
			return err
		}
		for _, s := range []cloudsim.Subnet{e.Networks.Worker, e.Networks.Pod, e.Networks.Management, e.Networks.DataPlane} {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.GatewayIP.AsSlice(), Mask: net.CIDRMask(s.CIDR.Bits(), 32)}}
			if err := netlink.AddrAdd(br, addr); err != nil {
				return fmt.Errorf("add gateway %s to %s: %w", addr, fabricBridge, err)
			}
		}
		return netlink.LinkSetUp(br)
	})
	if err != nil {
		return fmt.Errorf("set up the fabric namespace %s: %w", fabric, err)
	}
	if e.opts.RealNodes {
		if err := e.prepareRealNodes(ctx); err != nil {
			return err
		}
	}
	for i := 1; i <= e.opts.Nodes; i++ {
		n, err := e.startNode(ctx, i)
		if err != nil {
			return err
		}
		e.Nodes = append(e.Nodes, n)
	}
	if e.opts.RealNodes {
		return nil // Ready once kuryr-daemon runs: waitRealNodesReady
	}
	return e.waitSchedulable(ctx)
}

// waitSchedulable waits until the node lifecycle controller has lifted the
// not-ready taint every new Node gets, so that pods schedule at once.
func (e *Env) waitSchedulable(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, n := range nodes.Items {
			for _, t := range n.Spec.Taints {
				if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
					last = fmt.Sprintf("node %s has taint %s:%s", n.Name, t.Key, t.Effect)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("nodes not schedulable (is kube-controller-manager running? see %s): %s", e.LogDir(), last)
	}
	return nil
}

// nodeName is the name of the i-th node (from 1).
func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }

func (e *Env) startNode(ctx context.Context, i int) (*Node, error) {
	name := nodeName(i)
	n := &Node{Name: name, Index: i, Dir: filepath.Join(e.StateDir, name), fabric: e.fabric, slots: map[string]string{}, plug: map[string]string{},
		unplugging: map[string]bool{}}
	n.SysfsRoot = filepath.Join(n.Dir, "root")
	n.devinfoRoot = filepath.Join(n.Dir, "devinfo-root")
	n.DevinfoDir = filepath.Join(n.devinfoRoot, "var/run/k8s.cni.cncf.io/devinfo/cni")
	n.Socket = filepath.Join(n.Dir, "kuryr.sock")
	for _, d := range []string{n.SysfsRoot, n.DevinfoDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	srv, err := e.Cloud.SeedServer(cloudsim.ServerSpec{Name: name, SubnetID: e.Networks.Worker.ID, Trunk: true})
	if err != nil {
		return nil, err
	}
	n.Server = srv

	if n.NetNS, err = createNetNS(e.nsName(name)); err != nil {
		return nil, err
	}
	nsPath := n.NetNS
	e.defer_(func() error { return removeNetNS(nsPath) })
	if err := n.plugNIC(e.Networks.Worker); err != nil {
		return nil, err
	}

	n.logf = e.logf
	n.netdevKick = make(chan struct{}, 1)
	mctx, stopMirror := context.WithCancel(e.ctx)
	mirrored := make(chan struct{})
	go func() { defer close(mirrored); n.mirrorNetdevs(mctx) }()
	// Run by Close after the bus is closed (no more events), before the
	// namespace goes.
	e.defer_(func() error { stopMirror(); <-mirrored; return nil })
	simOpts := []pcisim.Option{pcisim.WithNetdevHook(n.netdevHook)}
	if e.opts.RealNodes {
		// A bind to uio_pci_generic makes <root>/dev/uioN, the node's
		// /var/lib/kuryr-aio/dev/uioN: the device node the DRA driver's
		// CDI spec names and containerd puts in the container.
		simOpts = append(simOpts, pcisim.WithUIODevNodes())
	}
	n.PCI, err = pcisim.Start(e.ctx, n.SysfsRoot, simOpts...)
	if err != nil {
		return nil, fmt.Errorf("start the PCI bus of %s: %w", name, err)
	}
	sim := n.PCI
	e.defer_(func() error { return sim.Close() })
	e.Cloud.SetServerHook(srv.Server.ID, (*vmHook)(n))
	e.defer_(func() error { e.Cloud.SetServerHook(srv.Server.ID, nil); return nil })

	if e.opts.RealNodes {
		if err := e.startRealNode(ctx, n); err != nil {
			return nil, err
		}
	} else if err := e.registerNode(ctx, n); err != nil {
		return nil, err
	}
	e.logf("node %s: netns %s, NIC %s %s %s, server %s, sysfs %s", name, n.NetNS, NodeNIC,
		srv.ParentPort.MACAddress, n.IP(), srv.Server.ID, n.SysfsRoot)
	return n, nil
}

// plugNIC gives the node namespace its NIC: one end of a veth pair whose
// other end is on the fabric bridge, with the parent port's MAC and IP.
func (n *Node) plugNIC(worker cloudsim.Subnet) error {
	mac, err := net.ParseMAC(n.Server.ParentPort.MACAddress)
	if err != nil {
		return fmt.Errorf("parent port %s MAC: %w", n.Server.ParentPort.ID, err)
	}
	if err := n.addFabricVeth(fmt.Sprintf("node%d", n.Index), NodeNIC, mac); err != nil {
		return err
	}
	return inNS(n.NetNS, func() error {
		l, err := netlink.LinkByName(NodeNIC)
		if err != nil {
			return err
		}
		ip := &net.IPNet{IP: net.ParseIP(n.IP()), Mask: net.CIDRMask(worker.CIDR.Bits(), 32)}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ip}); err != nil {
			return fmt.Errorf("add %s to %s: %w", ip, NodeNIC, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: worker.GatewayIP.AsSlice()})
	})
}

// addFabricVeth makes a veth pair: fabricEnd on the fabric bridge and up,
// vmEnd in the node namespace with mac and down, as a NIC a VM's kernel has
// just found: whoever configures it sets it up (plugNIC for the node's own
// NIC). A hot-plugged NIC must stay down: its end is on the same bridge as
// the node's NIC, and a netdev that is up answers ARP for every address of
// the node (arp_ignore 0), so the fabric could learn the node's IP at that
// NIC's MAC and lose the node (the kubelet's and the daemon's way to the API
// server) the moment the device is bound to a DPDK driver and its netdev
// goes.
func (n *Node) addFabricVeth(fabricEnd, vmEnd string, mac net.HardwareAddr) error {
	nodeNS, err := os.Open(n.NetNS)
	if err != nil {
		return err
	}
	defer nodeNS.Close()
	err = inNS(n.fabric, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = fabricEnd
		veth := &netlink.Veth{LinkAttrs: la, PeerName: vmEnd, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(nodeNS.Fd()))}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s/%s: %w", fabricEnd, vmEnd, err)
		}
		return joinFabricBridge(fabricEnd)
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}

// netdevHook mirrors the simulated kernel's netdevs as real links in the
// node namespace: a virtio-net device bound to virtio-pci has one; unbound,
// bound to a DPDK driver or removed, it has none. The hook only records and
// queues the event: mirrorNetdevs makes and removes the links, in the
// events' order. The simulated bus calls the hook while it handles a sysfs
// write, one write at a time, and a netlink call waits for the host
// kernel's RTNL lock, which every simulated VM and pod shares: in the
// 1000-pod bench that held each bind and unbind for seconds, past the
// daemon's bind timeout, where a VM's own kernel acts on the write at once.
func (n *Node) netdevHook(ev pcisim.NetdevEvent) error {
	kind := "netdev-down"
	if ev.Appeared {
		kind = "netdev-up"
	}
	n.record(HotplugEvent{Kind: kind, Addr: ev.Addr, MAC: ev.MAC})
	n.netdevMu.Lock()
	n.netdevQ = append(n.netdevQ, ev)
	n.netdevMu.Unlock()
	select {
	case n.netdevKick <- struct{}{}:
	default:
	}
	return nil
}

// mirrorNetdevs applies the queued netdev events to the node namespace, in
// order, until ctx ends; one that fails is recorded ("netdev-mirror-failed")
// and logged.
func (n *Node) mirrorNetdevs(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.netdevKick:
		}
		for {
			n.netdevMu.Lock()
			if len(n.netdevQ) == 0 {
				n.netdevMu.Unlock()
				break
			}
			ev := n.netdevQ[0]
			n.netdevQ = n.netdevQ[1:]
			n.netdevMu.Unlock()
			if ctx.Err() != nil || n.deleted.Load() {
				return
			}
			if err := n.mirrorNetdev(ev); err != nil {
				n.record(HotplugEvent{Kind: "netdev-mirror-failed: " + err.Error(), Addr: ev.Addr, MAC: ev.MAC})
				if n.logf != nil {
					n.logf("node %s: netdev %s of device %s (MAC %s) not mirrored in the node namespace: %v", n.Name, ev.IfName, ev.Addr, ev.MAC, err)
				}
			}
		}
	}
}

// mirrorNetdev makes or removes the link of one netdev event.
func (n *Node) mirrorNetdev(ev pcisim.NetdevEvent) error {
	fabricEnd := fmt.Sprintf("n%d-%s", n.Index, strings.ReplaceAll(ev.Addr[len(ev.Addr)-4:], ":", ""))
	if ev.Appeared {
		mac, err := net.ParseMAC(ev.MAC)
		if err != nil {
			return fmt.Errorf("device %s MAC: %w", ev.Addr, err)
		}
		return n.addFabricVeth(fabricEnd, ev.IfName, mac)
	}
	return inNS(n.NetNS, func() error {
		l, err := netlink.LinkByName(ev.IfName)
		if err != nil {
			if _, ok := err.(netlink.LinkNotFoundError); ok {
				return nil
			}
			return err
		}
		return netlink.LinkDel(l)
	})
}

// A simulated node VM's PCI slots for hot-plugged devices: 0000:00:05.0
// to 0000:00:1f.0 (the lower ones are its own devices').
const (
	firstPCISlot = 5
	// NodePCISlots is how many ports Nova can hot-attach to a simulated
	// node VM.
	NodePCISlots = 0x20 - firstPCISlot
)

// vmHook is the node VM as Nova's hypervisor sees it: an attach hot-plugs a
// virtio-net device with the port's MAC; a detach unplugs it.
type vmHook Node

var _ cloudsim.ServerHook = (*vmHook)(nil)

// Attached picks a free PCI slot and plugs the device a moment later.
func (h *vmHook) Attached(_ context.Context, serverID string, port cloudsim.Port) error {
	n := (*Node)(h)
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.slots[port.ID]; ok {
		return nil
	}
	used := maps.Clone(n.unplugging)
	for _, a := range n.slots {
		used[a] = true
	}
	for slot := firstPCISlot; slot < firstPCISlot+NodePCISlots; slot++ {
		addr := fmt.Sprintf("0000:00:%02x.0", slot)
		if !used[addr] {
			n.slots[port.ID] = addr
			n.history = append(n.history, HotplugEvent{Time: time.Now(), Kind: "attach", Addr: addr, PortID: port.ID, MAC: port.MACAddress})
			// The device shows up a moment later, as on a real VM, unless
			// the port was detached in between (then it never does).
			n.plug[port.ID] = "pending"
			portID, mac := port.ID, port.MACAddress
			time.AfterFunc(hotplugDelay, func() { n.hotplug(portID, addr, mac) })
			return nil
		}
	}
	return fmt.Errorf("server %s (node %s): no free PCI slot for port %s", serverID, n.Name, port.ID)
}

// hotplug puts the device of an attached port on the bus, unless the port
// was detached in the meantime. The PCI bus is called without n.mu held:
// its netdev hook records events under n.mu.
func (n *Node) hotplug(portID, addr, mac string) {
	n.mu.Lock()
	if n.slots[portID] != addr || n.plug[portID] != "pending" {
		// Detached (and maybe attached again: then that attach's own
		// hot-plug, or this one's twin, adds the device).
		n.mu.Unlock()
		return
	}
	n.plug[portID] = "adding"
	n.mu.Unlock()
	err := n.PCI.AddVirtioNet(addr, mac)
	n.mu.Lock()
	// Detached while the device was being added: Detached left the
	// address unplugging, for this hot-plug to clear once the device is
	// gone.
	still := !n.unplugging[addr]
	switch {
	case still && err == nil:
		n.plug[portID] = "plugged"
	case still:
		n.plug[portID] = "failed"
	}
	n.mu.Unlock()
	switch {
	case err != nil:
		// Nova has answered the attach already: nothing else tells anyone
		// that the device will never appear (the daemon's ADD waits for it).
		n.record(HotplugEvent{Kind: "hotplug-failed: " + err.Error(), Addr: addr, PortID: portID, MAC: mac})
		if n.logf != nil {
			n.logf("node %s: hot-plug of port %s (MAC %s) at %s failed, the device will not appear: %v", n.Name, portID, mac, addr, err)
		}
	case !still:
		// Detached while the device was being added.
		_ = n.PCI.Remove(addr)
	}
	if !still {
		n.mu.Lock()
		delete(n.unplugging, addr)
		n.mu.Unlock()
	}
}

// Detached unplugs the port's device.
func (h *vmHook) Detached(_ context.Context, serverID string, port cloudsim.Port) error {
	n := (*Node)(h)
	n.mu.Lock()
	addr, ok := n.slots[port.ID]
	state := n.plug[port.ID]
	delete(n.slots, port.ID)
	delete(n.plug, port.ID)
	if ok && (state == "adding" || state == "plugged") {
		// The device is on the bus, or being added: its address stays
		// taken until it is gone. A slot freed at once let the next
		// attach plug its device there while this one was still
		// present, and that hot-plug failed ("already present").
		n.unplugging[addr] = true
	}
	n.mu.Unlock()
	if !ok || state != "plugged" {
		// Not attached, or detached before its device appeared: a
		// hot-plug still pending sees the slot gone and does nothing,
		// one under way sees the address unplugging and undoes itself;
		// a hot-plug that failed left nothing on the bus.
		return nil
	}
	n.record(HotplugEvent{Kind: "detach", Addr: addr, PortID: port.ID, MAC: port.MACAddress})
	err := n.PCI.Remove(addr)
	n.mu.Lock()
	delete(n.unplugging, addr)
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("server %s (node %s): unplug %s of port %s: %w", serverID, n.Name, addr, port.ID, err)
	}
	return nil
}

// registerNode creates the Node object as a kubelet registers it, and keeps
// its lease renewed.
func (e *Env) registerNode(ctx context.Context, n *Node) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:                   resource.MustParse("8"),
		corev1.ResourceMemory:                resource.MustParse("16Gi"),
		corev1.ResourceName("hugepages-2Mi"): resource.MustParse("2Gi"),
		corev1.ResourceName("hugepages-1Gi"): resource.MustParse("0"),
		corev1.ResourcePods:                  resource.MustParse("110"),
		corev1.ResourceEphemeralStorage:      resource.MustParse("40Gi"),
	}
	alloc := res.DeepCopy()
	alloc[corev1.ResourceMemory] = resource.MustParse("13Gi") // less the hugepages and system reserve
	now := metav1.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"node.kubernetes.io/instance-type": "m1.dpdk", "topology.kubernetes.io/zone": "nova",
		}},
		Spec: corev1.NodeSpec{ProviderID: "openstack:///" + n.Server.Server.ID},
	}
	status := corev1.NodeStatus{
		Capacity: res, Allocatable: alloc,
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IP()}, {Type: corev1.NodeHostName, Address: n.Name}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet stand-in of kuryr-aio is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "kuryr-aio://stand-in", OSImage: "simulated node VM"},
	}
	created, err := e.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create Node %s: %w", n.Name, err)
	}
	created.Status = status
	if _, err := e.Clientset.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of Node %s: %w", n.Name, err)
	}
	go e.heartbeat(n.Name)
	return nil
}

// heartbeat renews the node's lease every 10 s, as a kubelet does, so that
// the node lifecycle controller keeps it Ready; and, as the kubelet's
// status sync does, it sets the Node's Ready condition back to True when
// that controller has changed it (it marks a node Unknown whose lease it
// has not seen renewed for its grace period, as after an outage of the API
// server).
func (e *Env) heartbeat(name string) {
	leases := e.Clientset.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, _ = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(int32(40)), RenewTime: &now}},
				metav1.CreateOptions{})
		case err == nil:
			l.Spec.RenewTime = &now
			_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		e.keepReady(ctx, name)
		cancel()
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		if n := e.Node(name); n != nil && n.Deleted() {
			return
		}
	}
}

// keepReady sets Node name's Ready condition to True if it is not.
func (e *Env) keepReady(ctx context.Context, name string) {
	nodes := e.Clientset.CoreV1().Nodes()
	node, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	for i, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady || c.Status == corev1.ConditionTrue {
			continue
		}
		now := metav1.Now()
		node.Status.Conditions[i] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet stand-in of kuryr-aio is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
		if _, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}); err == nil {
			e.logf("node %s: Ready was %s (%s); set back to True, as its kubelet would", name, c.Status, c.Reason)
		}
		return
	}
}

// DeleteNode deletes node n as a failed or scaled-down VM goes: the VM
// stops at once (its kuryr-daemon killed, its kubelet stand-in stopped
// without a DEL, its pods' namespaces, devices and NIC gone with it), Nova
// deletes its server (cloudsim.Cloud.DeleteServer: the ports bound to it
// and its trunk go too), and the Node object is deleted, as the cloud
// provider's node lifecycle controller does for a vanished server. Its
// pods are then left to kube-controller-manager's pod garbage collector
// and to kuryr-controller. Stand-in nodes only.
func (e *Env) DeleteNode(ctx context.Context, n *Node) error {
	if n.real != nil {
		return fmt.Errorf("delete node %s: only stand-in nodes can be deleted", n.Name)
	}
	if n.deleted.Swap(true) {
		return fmt.Errorf("delete node %s: already deleted", n.Name)
	}
	var errs []error
	if n.Daemon != nil {
		errs = append(errs, n.Daemon.kill())
	}
	if n.Kubelet != nil {
		errs = append(errs, n.Kubelet.stop())
	}
	e.Cloud.SetServerHook(n.Server.Server.ID, nil)
	errs = append(errs, n.PCI.Close(), removeNetNS(n.NetNS))
	n.mu.Lock()
	n.slots, n.plug, n.unplugging = map[string]string{}, map[string]string{}, map[string]bool{}
	n.mu.Unlock()
	errs = append(errs, e.Cloud.DeleteServer(n.Server.Server.ID))
	if err := e.Clientset.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete Node %s: %w", n.Name, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete node %s: %w", n.Name, err)
	}
	e.logf("node %s deleted: VM stopped, server %s deleted, Node object deleted", n.Name, n.Server.Server.ID)
	return nil
}

// joinFabricBridge puts link name, of the fabric namespace the calling
// thread is in, on the fabric bridge and sets it up.
func joinFabricBridge(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	br, err := netlink.LinkByName(fabricBridge)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(l, br); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}
