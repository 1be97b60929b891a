package aio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

// nodeLinkMAC returns the MAC of link name in the node namespace, "" when
// there is no such link.
func nodeLinkMAC(t *testing.T, n *Node, name string) string {
	t.Helper()
	var mac string
	err := inNS(n.NetNS, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			if _, ok := err.(netlink.LinkNotFoundError); ok {
				return nil
			}
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	if err != nil {
		t.Fatalf("look for %s in %s: %v", name, n.Name, err)
	}
	return mac
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// dataPlanePort creates a port named name on the data-plane network, with
// a client of the environment's cloud.
func dataPlanePort(t *testing.T, ctx context.Context, name string) (*openstack.Client, openstack.Port) {
	t.Helper()
	cloud, err := env.OpenStackClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port, err := cloud.CreatePort(ctx, openstack.PortSpec{NetworkID: env.Networks.DataPlane.NetworkID,
		SubnetID: env.Networks.DataPlane.ID, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return cloud, port
}

// attachAndWait attaches port to node n's server and returns the PCI
// address of the device that appears for it.
func attachAndWait(t *testing.T, ctx context.Context, cloud *openstack.Client, n *Node, port openstack.Port) string {
	t.Helper()
	if _, err := cloud.AttachInterface(ctx, n.Server.Server.ID, port.ID); err != nil {
		t.Fatal(err)
	}
	addr, err := pci.New(n.SysfsRoot).WaitForMAC(ctx, port.MACAddress)
	if err != nil {
		t.Fatalf("device with MAC %s never appeared under %s: %v", port.MACAddress, n.SysfsRoot, err)
	}
	return addr
}

// A Nova attach hot-plugs a virtio-net device into the node: sysfs entries
// under the node's root and a netdev with the port's MAC in its namespace;
// binding it to a DPDK driver (with the production internal/pci code) takes
// the netdev away, rebinding brings it back, and the detach unplugs it.
func TestNovaAttachHotPlugsADevice(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := env.Nodes[0]
	cloud, port := dataPlanePort(t, ctx, "hotplug-test")
	attachedAt := time.Now()
	addr := attachAndWait(t, ctx, cloud, n, port)
	sysfs := pci.New(n.SysfsRoot)
	if delay := time.Since(attachedAt); delay < hotplugDelay {
		t.Errorf("device appeared %s after the attach, before the simulated hot-plug delay %s", delay, hotplugDelay)
	}
	if addr != n.PCIAddress(port.ID) {
		t.Errorf("device at %s, the hook recorded %s", addr, n.PCIAddress(port.ID))
	}
	if drv, err := sysfs.Driver(addr); err != nil || drv != pci.DriverVirtioPCI {
		t.Errorf("new device bound to %q (%v), want %s", drv, err, pci.DriverVirtioPCI)
	}
	ifname := n.PCI.Netdev(addr)
	waitFor(t, "netdev "+ifname+" in "+n.Name, func() bool { return nodeLinkMAC(t, n, ifname) == port.MACAddress })

	if err := sysfs.Bind(ctx, addr, pci.DriverUIO); err != nil {
		t.Fatalf("bind %s to %s: %v", addr, pci.DriverUIO, err)
	}
	waitFor(t, "netdev "+ifname+" gone after the DPDK bind", func() bool { return nodeLinkMAC(t, n, ifname) == "" })

	if err := sysfs.Bind(ctx, addr, pci.DriverVirtioPCI); err != nil {
		t.Fatalf("rebind %s to %s: %v", addr, pci.DriverVirtioPCI, err)
	}
	waitFor(t, "netdev back after the rebind", func() bool {
		name := n.PCI.Netdev(addr)
		return name != "" && nodeLinkMAC(t, n, name) == port.MACAddress
	})
	ifname = n.PCI.Netdev(addr)

	if err := cloud.DetachInterface(ctx, n.Server.Server.ID, port.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "device gone after the detach", func() bool { return !sysfs.Exists(addr) })
	waitFor(t, "netdev gone after the detach", func() bool { return nodeLinkMAC(t, n, ifname) == "" })
	if n.PCIAddress(port.ID) != "" {
		t.Errorf("node %s still records a slot for port %s", n.Name, port.ID)
	}
	if errs := n.PCI.Errors(); len(errs) > 0 {
		t.Errorf("simulator errors: %v", errs)
	}
}

// fabricResolvesNode flushes the fabric namespace's neighbour entry of the
// node's IP, opens a TCP connection to the node from the fabric (any answer,
// a refusal too, needs the node's MAC) and returns the MAC the fabric
// resolved the node's IP to.
func fabricResolvesNode(t *testing.T, n *Node) string {
	t.Helper()
	ip := net.ParseIP(n.IP())
	var mac string
	err := inNS(n.fabric, func() error {
		neighs, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, nb := range neighs {
			if nb.IP.Equal(ip) {
				if err := netlink.NeighDel(&nb); err != nil {
					return fmt.Errorf("flush neighbour %s: %w", ip, err)
				}
			}
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(n.IP(), "9"), 2*time.Second); err == nil {
			_ = c.Close()
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("reach node %s at %s from the fabric: %w", n.Name, ip, err)
		}
		neighs, err = netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, nb := range neighs {
			if nb.IP.Equal(ip) && nb.HardwareAddr != nil {
				mac = nb.HardwareAddr.String()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// A hot-plugged NIC appears down, as on a real VM, although its simulated
// wire is on the node NIC's bridge: up, it would answer ARP for the node's
// IP with its own MAC, the fabric would send the node's traffic (the
// kubelet's, the daemon's) to it, and that traffic would be lost while the
// device is bound to a DPDK driver (a CI run lost the real node's way to
// the API server for a minute at a time that way). The test fails if the
// device's netdev is up or if the fabric resolves the node's IP to
// anything but the node NIC's MAC with the device present.
func TestHotPluggedNICStaysDownAndOffTheNodesAddress(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := env.Nodes[0]
	cloud, port := dataPlanePort(t, ctx, "hotplug-arp-test")
	defer func() { _ = cloud.DeletePort(context.Background(), port.ID) }()
	defer func() { _ = cloud.DetachInterface(context.Background(), n.Server.Server.ID, port.ID) }()
	addr := attachAndWait(t, ctx, cloud, n, port)
	ifname := n.PCI.Netdev(addr)
	waitFor(t, "netdev "+ifname+" in "+n.Name, func() bool { return nodeLinkMAC(t, n, ifname) == port.MACAddress })
	var up bool
	err := inNS(n.NetNS, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		up = l.Attrs().Flags&net.FlagUp != 0
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if up {
		t.Errorf("hot-plugged netdev %s of %s is up; a NIC the VM's kernel has just found is down", ifname, n.Name)
	}
	nodeMAC := nodeLinkMAC(t, n, NodeNIC)
	for i := range 3 {
		if got := fabricResolvesNode(t, n); got != nodeMAC {
			t.Fatalf("try %d: the fabric resolves node %s's IP %s to %q, want its NIC %s's MAC %s (the hot-plugged %s has %s)",
				i, n.Name, n.IP(), got, NodeNIC, nodeMAC, ifname, port.MACAddress)
		}
	}
}

// Close removes every namespace, process and directory of an environment.
func TestCloseLeavesNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{Nodes: 1, NoKuryr: true, BinDir: env.opts.BinDir, CNIBinDir: env.opts.CNIBinDir,
		CNIConfig: env.opts.CNIConfig})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreatePod(ctx, testPod("leak-check")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pod leak-check running", func() bool { return e.Nodes[0].Kubelet.NetNS("default", "leak-check") != "" })
	var pids []int
	procs := e.Processes()
	for _, p := range procs {
		pids = append(pids, p.Pid())
	}
	if len(procs) < 4 {
		t.Fatalf("environment tracks %d processes, want at least etcd, apiserver, scheduler, controller manager", len(procs))
	}
	state := e.StateDir
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	left, err := leftovers(e.ID, state, pids)
	if err != nil {
		t.Fatal(err)
	}
	if left != "" {
		t.Errorf("left behind: %s", left)
	}
}

// leftovers lists what of environment id is still there.
func leftovers(id, state string, pids []int) (string, error) {
	var out []string
	entries, err := readDirNames(netnsDir)
	if err != nil {
		return "", err
	}
	for _, name := range entries {
		if strings.HasPrefix(name, "kuryr-aio-"+id+"-") {
			out = append(out, "netns "+name)
		}
	}
	if exists(state) {
		out = append(out, "directory "+state)
	}
	for _, pid := range pids {
		if pid != 0 && exists(fmt.Sprintf("/proc/%d", pid)) {
			out = append(out, fmt.Sprintf("process %d", pid))
		}
	}
	return strings.Join(out, ", "), nil
}

func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// What a killed environment left (a namespace, a state directory with the
// pid of a dead process) is removed by the next Start; a live one's is not.
func TestStaleEnvironmentIsReaped(t *testing.T) {
	netnstest.RequireRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	id := "s" + randomHex(3)
	dir, err := os.MkdirTemp("", "kuryr-aio-"+id+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	nsPath, err := createNetNS("kuryr-aio-" + id + "-node-1")
	if err != nil {
		t.Fatal(err)
	}
	reaped, err := reapStale()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(reaped, id) || exists(dir) || exists(nsPath) {
		t.Errorf("reaped %v; %s exists %v, %s exists %v", reaped, dir, exists(dir), nsPath, exists(nsPath))
	}
	if !exists(env.StateDir) || slices.Contains(reaped, env.ID) {
		t.Errorf("the live environment %s was reaped", env.ID)
	}
}

// TestDetachKeepsSlotUntilDeviceGone: a port detached while its device is
// being added keeps its PCI address taken until the device is gone, so
// the next attach gets another slot and its device appears; no hot-plug
// fails. (The slot used to be freed at once: the next attach took it, and
// its hot-plug found the first device still there, "already present", and
// never added its own.) The simulated PCI bus holds the first device's
// netdev hook until the second attach has picked its slot.
func TestDetachKeepsSlotUntilDeviceGone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entered, hold := make(chan struct{}), make(chan struct{})
	var first sync.Once
	sim, err := pcisim.Start(ctx, t.TempDir(), pcisim.WithNetdevHook(func(ev pcisim.NetdevEvent) error {
		if ev.Appeared {
			first.Do(func() { close(entered); <-hold })
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	n := &Node{Name: "slots", PCI: sim, slots: map[string]string{}, plug: map[string]string{}, unplugging: map[string]bool{}}
	h := (*vmHook)(n)
	a := cloudsim.Port{ID: "port-a", MACAddress: "fa:16:3e:00:00:0a"}
	b := cloudsim.Port{ID: "port-b", MACAddress: "fa:16:3e:00:00:0b"}
	if err := h.Attached(ctx, "server", a); err != nil {
		t.Fatal(err)
	}
	addrA := n.PCIAddress(a.ID)
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the device of port-a was never being added")
	}
	if err := h.Detached(ctx, "server", a); err != nil {
		t.Fatal(err)
	}
	if err := h.Attached(ctx, "server", b); err != nil {
		t.Fatal(err)
	}
	addrB := n.PCIAddress(b.ID)
	close(hold)
	if addrB == "" || addrB == addrA {
		t.Fatalf("port-b attached at %q while port-a's device was still being added at %s", addrB, addrA)
	}
	sysfs := pci.New(sim.Root())
	got, err := sysfs.WaitForMAC(ctx, b.MACAddress)
	if err != nil || got != addrB {
		t.Fatalf("port-b's device: at %q (%v), want %s", got, err, addrB)
	}
	waitFor(t, "port-a's device gone and its address free", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return !sysfs.Exists(addrA) && !n.unplugging[addrA]
	})
	for _, ev := range n.History() {
		if strings.HasPrefix(ev.Kind, "hotplug-failed") {
			t.Errorf("%s of port %s at %s", ev.Kind, ev.PortID, ev.Addr)
		}
	}
	if errs := sim.Errors(); len(errs) > 0 {
		t.Errorf("simulator errors: %v", errs)
	}
}

// gatewayMACSeenByNode makes node n connect to a listener on the worker
// subnet's gateway address in the fabric (so it resolves the gateway, or
// uses the entry it has) and returns the MAC its neighbour table holds for
// the gateway, with the connection's error.
func gatewayMACSeenByNode(t *testing.T, n *Node, gw net.IP) (string, error) {
	t.Helper()
	var ln net.Listener
	err := inNS(n.fabric, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
		return err
	})
	if err != nil {
		t.Fatalf("listen on the gateway %s in the fabric: %v", gw, err)
	}
	defer ln.Close()
	var mac string
	var dialErr error
	err = inNS(n.NetNS, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 3*time.Second)
		if err == nil {
			_ = c.Close()
		}
		dialErr = err
		neighs, err := netlink.NeighList(0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, nb := range neighs {
			if nb.IP.Equal(gw) && nb.HardwareAddr != nil {
				mac = nb.HardwareAddr.String()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac, dialErr
}

// The gateways' MAC (the fabric bridge's) does not change as NICs are
// plugged into the fabric and unplugged: a node keeps reaching the gateway
// (the real nodes' way to the API server) at the MAC it has cached. A Linux
// bridge with no address of its own takes its lowest port MAC; a hot-plugged
// NIC's port with a lower one changed it, the fabric flushed its neighbours
// and the nodes sent to the old MAC until their ARP entries went stale
// (15–25 s of a real node NotReady in test/e2e). The test plugs a port with
// the lowest unicast MAC there is into the bridge, and then removes it: the
// node's cached gateway MAC must stay the bridge's, and a new connection
// from the node must get through, each time.
func TestFabricGatewayMACStaysAsPortsComeAndGo(t *testing.T) {
	netnstest.RequireRoot(t)
	n := env.Nodes[0]
	gw := env.Networks.Worker.GatewayIP.AsSlice()
	bridgeMAC := func() string {
		var mac string
		err := inNS(n.fabric, func() error {
			br, err := netlink.LinkByName(fabricBridge)
			if err != nil {
				return err
			}
			mac = br.Attrs().HardwareAddr.String()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return mac
	}
	cached, err := gatewayMACSeenByNode(t, n, gw)
	if err != nil || cached != bridgeMAC() {
		t.Fatalf("before: node %s reaches the gateway %s: %v, at MAC %q; the bridge has %s", n.Name, gw, err, cached, bridgeMAC())
	}
	lowest := net.HardwareAddr{0, 0, 0, 0, 0, 1}
	err = inNS(n.fabric, func() error {
		la := netlink.NewLinkAttrs()
		la.Name, la.HardwareAddr = "lowmac0", lowest
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "lowmac1"}); err != nil {
			return err
		}
		return joinFabricBridge("lowmac0")
	})
	if err != nil {
		t.Fatalf("plug a port with MAC %s into the fabric: %v", lowest, err)
	}
	removeLow := func() error {
		return inNS(n.fabric, func() error {
			l, err := netlink.LinkByName("lowmac0")
			if err != nil {
				return err
			}
			return netlink.LinkDel(l)
		})
	}
	removed := false
	defer func() {
		if !removed {
			_ = removeLow()
		}
	}()
	for _, step := range []string{"with the port plugged", "with the port removed"} {
		if step == "with the port removed" {
			if err := removeLow(); err != nil {
				t.Fatal(err)
			}
			removed = true
		}
		if got := bridgeMAC(); got != cached {
			t.Errorf("%s: the bridge's MAC is %s, the node cached %s for the gateway", step, got, cached)
		}
		if mac, err := gatewayMACSeenByNode(t, n, gw); err != nil || mac != cached {
			t.Errorf("%s: node %s reaches the gateway: %v, at MAC %q, want %s", step, n.Name, err, mac, cached)
		}
	}
}
