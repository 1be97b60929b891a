package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// dpdkFixture is a fixture of one node whose pods ask for the dataplane
// network only (nested-dpdk; no eth0: delegate-only mode), with the
// nested-dpdk pools sized size and the node's annotations set.
func dpdkFixture(t *testing.T, size PoolSize, annotations map[string]string) (*fixture, string) {
	t.Helper()
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Primary = false
	f.opts.Pools.NestedDPDK = size
	f.standardNADs()
	if len(annotations) > 0 {
		var n corev1.Node
		must(t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &n))
		n.Annotations = annotations
		must(t, f.c.Update(f.ctx, &n))
	}
	return f, node
}

// attached says whether port id is attached to node's server.
func (f *fixture) attached(node, id string) bool {
	p, ok := f.sim.Port(id)
	return ok && p.DeviceID == f.servers[node].Server.ID
}

// nodeEvents lists the Events about node ("Reason: message"), wherever
// they were recorded (a cluster-scoped object's go to "default").
func (f *fixture) nodeEvents(node string) ([]string, error) {
	var list corev1.EventList
	if err := f.c.List(f.ctx, &list); err != nil {
		return nil, err
	}
	out := []string{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == node {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out, nil
}

// kuryrNodeStatus reads node's KuryrNode status.
func (f *fixture) kuryrNodeStatus(node string) (v1alpha1.KuryrNodeStatus, error) {
	var kn v1alpha1.KuryrNode
	err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn)
	return kn.Status, err
}

// devices reads the DPDK devices node's KuryrNode lists: by port ID, its
// state and owner ("InUse pod/<UID>", "Ready").
func (f *fixture) devices(node string) (map[string]string, error) {
	st, err := f.kuryrNodeStatus(node)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range st.DPDKDevices {
		out[d.PortID] = strings.TrimSuffix(string(d.State)+" "+d.Owner, " ")
	}
	return out, nil
}

// waitDevices waits until node's KuryrNode lists the DPDK devices want
// gives, by port ID, with their state and owner (others may be listed
// too).
func (f *fixture) waitDevices(node string, want map[string]string) {
	f.t.Helper()
	f.eventually(20*time.Second, fmt.Sprintf("status.dpdkDevices %v", want), func() (bool, string) {
		all, err := f.devices(node)
		if err != nil {
			return false, err.Error()
		}
		got := maps.Clone(all)
		maps.DeleteFunc(got, func(id, _ string) bool { _, ok := want[id]; return !ok })
		return maps.Equal(got, want), fmt.Sprint(all)
	})
}

// TestDPDKPoolFillsWithinHotplugSlots: a node with 3 hot-plug slots and a
// nested-dpdk pool sized 4: the first pod's interface waits for the pool
// instead of attaching a port of its own; the pool makes and attaches 3
// ports, never a 4th (Nova is asked 3 times in all), says why with a
// NoHotplugSlot Event on the Node naming the node and the limit and in
// its lastError; the pod gets one of them; the KuryrNode shows the
// slots full and the devices with their states and owner.
func TestDPDKPoolFillsWithinHotplugSlots(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 4, Max: 4, Batch: 4}, map[string]string{v1alpha1.HotplugSlotsAnnotation: "3"})
	f.startController()
	pod := f.createPod("first", node, "dataplane")
	kp := f.waitReady("first")
	id := kp.Status.Interfaces[0].PortID
	if _, pooled := f.poolPorts()[id]; !pooled || !f.attached(node, id) {
		t.Fatalf("the pod's port %s: pooled %v, attached %v", id, pooled, f.attached(node, id))
	}
	want := fmt.Sprintf("node %s has no free hot-plug slot: all 3 in use", node)
	f.eventually(20*time.Second, "a NoHotplugSlot Event on the node and the pool's lastError", func() (bool, string) {
		evs, err := f.nodeEvents(node)
		if err != nil {
			return false, err.Error()
		}
		st, s := f.pool(node)
		return slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonNoSlot+":") && strings.Contains(e, want) }) &&
			strings.Contains(st.LastError, want), fmt.Sprintf("events %v, pool %s", evs, s)
	})
	f.poolAttached(node, 3) // none past the slots, none for the pod itself
	devices := map[string]string{}
	for pid := range f.poolPorts() {
		devices[pid] = "Ready"
	}
	devices[id] = "InUse pod/" + string(pod.UID)
	f.waitDevices(node, devices)
	st, err := f.kuryrNodeStatus(node)
	must(t, err)
	if len(st.DPDKDevices) != 3 {
		t.Fatalf("KuryrNode lists %d DPDK devices, want the 3 attached: %+v", len(st.DPDKDevices), st.DPDKDevices)
	}
	if st.HotplugSlots == nil || *st.HotplugSlots != (v1alpha1.HotplugSlots{Limit: 3, Used: 3, Free: 0}) {
		t.Fatalf("KuryrNode hot-plug slots %+v, want 3 used of 3", st.HotplugSlots)
	}
	if len(st.Pools) != 1 || st.Pools[0].Driver != v1alpha1.DriverNestedDPDK || st.Pools[0].Ready != 2 || st.Pools[0].InUse != 1 {
		t.Fatalf("KuryrNode pools %+v, want one nested-dpdk pool with 2 ready and 1 in use", st.Pools)
	}
}

// TestDPDKPoolsOfANodeShareItsSlots: two DPDK pools declared on one node
// (two subnets), each sized 2, and 3 free hot-plug slots: their fills run
// at once, and together they make 3 ports, never more (each port made is
// counted in the requests that reach the simulated cloud), all attached;
// the pool left short says why in its lastError, with a NoHotplugSlot
// Event on the Node, and gets no port when it looks again (after
// slotRecheck); the KuryrNode shows 3 of 3 slots used.
func TestDPDKPoolsOfANodeShareItsSlots(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 2, Max: 2, Batch: 2}, map[string]string{v1alpha1.HotplugSlotsAnnotation: "3"})
	f.opts.Pools.NestedDPDKNetworks = []PoolNetwork{{SubnetID: f.dpNet.ID}, {SubnetID: f.mgmtNet.ID}}
	var created atomic.Int64
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v2.0/ports") {
			var req struct {
				Ports []json.RawMessage `json:"ports"`
				Port  json.RawMessage   `json:"port"`
			}
			_ = json.Unmarshal([]byte(body(r)), &req)
			created.Add(int64(len(req.Ports)))
			if req.Port != nil {
				created.Add(1)
			}
		}
		next.ServeHTTP(w, r)
	})
	f.startController()
	want := fmt.Sprintf("node %s has no free hot-plug slot: all 3 in use", node)
	settled := func(lastError bool) (bool, string) {
		st, err := f.kuryrNodeStatus(node)
		if err != nil {
			return false, err.Error()
		}
		ready, full := 0, false
		for _, p := range st.Pools {
			ready += p.Ready
			full = full || strings.Contains(p.LastError, want)
		}
		return len(st.Pools) == 2 && ready == 3 && (full || !lastError) && st.HotplugSlots != nil &&
				*st.HotplugSlots == (v1alpha1.HotplugSlots{Limit: 3, Used: 3, Free: 0}),
			fmt.Sprintf("pools %+v, slots %+v, %d ports created", st.Pools, st.HotplugSlots, created.Load())
	}
	f.eventually(20*time.Second, "3 ports ready in the 2 pools, the slots full", func() (bool, string) { return settled(true) })
	// The short pool looks again after slotRecheck: still no slot.
	time.Sleep(slotRecheck + 2*poolTick)
	if ok, s := settled(false); !ok {
		t.Fatalf("after the short pool's recheck: %s", s)
	}
	if n := created.Load(); n != 3 {
		t.Fatalf("%d DPDK ports created for the node's pools, want 3 (its free hot-plug slots)", n)
	}
	f.poolAttached(node, 3)
	evs, err := f.nodeEvents(node)
	must(t, err)
	if !slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonNoSlot+":") && strings.Contains(e, want) }) {
		t.Fatalf("no %s Event on node %s naming its limit: %v", reasonNoSlot, node, evs)
	}
}

// TestDPDKPoolDeclaredFillsWithoutConsumers: with
// pools.nestedDPDKNetworks, each node's DPDK pool is made and filled (its
// ports made and attached, Ready in the KuryrNode, where the DRA driver
// publishes them) before any pod or claim asks for one.
func TestDPDKPoolDeclaredFillsWithoutConsumers(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 2, Max: 2, Batch: 2}, nil)
	f.opts.Pools.NestedDPDKNetworks = []PoolNetwork{{SubnetID: f.dpNet.ID, SecurityGroups: []string{f.sg}}}
	f.startController()
	f.waitPoolReady(node, 2)
	want := map[string]string{}
	for pid, p := range f.poolPorts() {
		if !f.attached(node, pid) {
			t.Fatalf("pool port %s is not attached to the node's server", pid)
		}
		if len(p.FixedIPs) == 0 || p.FixedIPs[0].SubnetID != f.dpNet.ID || !slices.Equal(p.SecurityGroups, []string{f.sg}) {
			t.Fatalf("pool port %s on %+v with groups %v, want the declared subnet %s and group %s", pid, p.FixedIPs, p.SecurityGroups, f.dpNet.ID, f.sg)
		}
		want[pid] = "Ready"
	}
	if len(want) != 2 {
		t.Fatalf("%d pool ports made, want 2", len(want))
	}
	f.waitDevices(node, want)
}

// TestDPDKPoolTakeAndRecycle: the first pod's nested-dpdk interface
// waits for the pool its miss made and gets one of its ports, counted as
// one miss and no hit; a pod's nested-dpdk interface then takes a
// pre-attached pool port with exactly one OpenStack request (its owner
// tag) and is Ready at once, a hit; deleting the pod gives the port back
// to the pool still attached (no detach, no delete) and Ready again.
func TestDPDKPoolTakeAndRecycle(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 3, Batch: 3}, nil)
	// Requests are counted: the controller sees only this test's pods, not
	// other tests' left on the shared API server (their nodes' lookups
	// would count).
	f.ownNamespace = true
	f.startController()
	// Once the pools are rebuilt the first pod's miss makes the pool
	// (before, it would take the unpooled path and make none).
	f.eventually(20*time.Second, "the pools rebuilt", func() (bool, string) {
		ps := f.rec.Load().pools
		ps.mu.Lock()
		defer ps.mu.Unlock()
		return ps.loaded, "not yet"
	})
	f.createPod("first", node, "dataplane")
	firstPort := f.waitReady("first").Status.Interfaces[0].PortID
	f.waitPoolReady(node, 2)
	m, dpdk := f.rec.Load().metrics, string(v1alpha1.DriverNestedDPDK)
	takes := func() (hit, miss float64) {
		return testutil.ToFloat64(m.poolTakes.WithLabelValues(dpdk, "hit")), testutil.ToFloat64(m.poolTakes.WithLabelValues(dpdk, "miss"))
	}
	if _, pooled := f.poolPorts()[firstPort]; !pooled {
		t.Fatalf("the first pod's port %s is not pooled: it did not wait for the pool", firstPort)
	}
	if hit, miss := takes(); hit != 0 || miss != 1 {
		t.Fatalf("after the first pod waited for the pool kuryr_controller_pool_takes_total has hit %v, miss %v; want 0 and 1", hit, miss)
	}

	before, counts := f.calls.Load(), f.sim.Counts()
	second := f.createPod("second", node, "dataplane")
	kp := f.waitReady("second")
	if n := f.calls.Load() - before; n != 1 {
		t.Fatalf("the pooled DPDK pod's path made %d OpenStack requests, want 1 (%v)", n, countsSince(counts, f.sim.Counts()))
	}
	if hit, miss := takes(); hit != 1 || miss != 1 {
		t.Fatalf("after the second pod's take kuryr_controller_pool_takes_total has hit %v, miss %v; want 1 and 1", hit, miss)
	}
	id := kp.Status.Interfaces[0].PortID
	p, pooled := f.poolPorts()[id]
	if !pooled || tagValue(p.Tags, tagPrefixPod) != string(second.UID) || !f.attached(node, id) ||
		kp.Status.Interfaces[0].MAC != p.MACAddress || kp.Status.Interfaces[0].State != v1alpha1.StateActive {
		t.Fatalf("second pod's port %s: pooled %v, tags %v, attached %v, status %+v", id, pooled, p.Tags, f.attached(node, id), kp.Status.Interfaces[0])
	}

	detaches, deletes := f.sim.Count("nova.interfaces.detach"), f.sim.Count("neutron.ports.delete")
	f.deletePod("second")
	f.waitGone("second")
	f.eventually(20*time.Second, "the released port ready in the pool", func() (bool, string) {
		return slices.Contains(f.readyPortIDs(node), id), fmt.Sprint(f.readyPortIDs(node))
	})
	if p, _ := f.sim.Port(id); tagValue(p.Tags, tagPrefixPod) != "" || !f.attached(node, id) {
		t.Fatalf("recycled port %s: tags %v, attached %v", id, p.Tags, f.attached(node, id))
	}
	if d, x := f.sim.Count("nova.interfaces.detach")-detaches, f.sim.Count("neutron.ports.delete")-deletes; d != 0 || x != 0 {
		t.Fatalf("the release made %d detaches and %d deletes, want none (recycled)", d, x)
	}
	f.eventually(20*time.Second, "the recycled device Ready in the KuryrNode", func() (bool, string) {
		st, err := f.kuryrNodeStatus(node)
		if err != nil {
			return false, err.Error()
		}
		i := slices.IndexFunc(st.DPDKDevices, func(d v1alpha1.DPDKDevice) bool { return d.PortID == id })
		return i >= 0 && st.DPDKDevices[i].State == v1alpha1.DPDKDeviceReady && st.DPDKDevices[i].Owner == "" &&
			st.DPDKDevices[i].MAC == p.MACAddress && st.DPDKDevices[i].SubnetID == f.dpNet.ID, fmt.Sprintf("%+v", st.DPDKDevices)
	})
}

// newClaim creates a ResourceClaim asking for one device of our driver's
// class, as a user would.
func (f *fixture) newClaim(name string) *resourcev1.ResourceClaim {
	f.t.Helper()
	c := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "dpdk", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: draDriver},
		}}}},
	}
	must(f.t, f.c.Create(f.ctx, c))
	return c
}

// allocate writes claim c's allocation of device port-<portID> of node's
// pool, as the scheduler does; portID "" deallocates it.
func (f *fixture) allocate(c *resourcev1.ResourceClaim, node, portID string) {
	f.t.Helper()
	must(f.t, f.c.Get(f.ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, c))
	c.Status.Allocation = nil
	if portID != "" {
		c.Status.Allocation = &resourcev1.AllocationResult{
			Devices: resourcev1.DeviceAllocationResult{Results: []resourcev1.DeviceRequestAllocationResult{{
				Request: "dpdk", Driver: draDriver, Pool: node, Device: draDevicePrefix + portID,
			}}},
			NodeSelector: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{
				Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
			}}}}},
		}
	}
	must(f.t, f.c.Status().Update(f.ctx, c))
}

// TestDPDKClaimOwnsPoolDevice: a ResourceClaim allocated a Ready pool
// device (its status.allocation written as the scheduler would) gets it:
// the port is tagged with the claim's UID and the KuryrNode shows it InUse
// by claim/<UID>; a pod then never gets it; a second claim allocated the
// same device, and one allocated a pod's device, each get an Event naming
// the device; after a restart the rebuilt pool still counts it the
// claim's; when the claim is deallocated the port goes back to the pool,
// still attached; and a claim deleted while the controller is down has
// its device given back after the restart.
func TestDPDKClaimOwnsPoolDevice(t *testing.T) {
	// Max 4: every device given back below is wanted by the pool.
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 4, Batch: 2}, nil)
	stop := f.startController()
	first := f.createPod("first", node, "dataplane")
	podPort := f.waitReady("first").Status.Interfaces[0].PortID
	f.waitPoolReady(node, 1)
	dev := f.readyPortIDs(node)[0]

	claim := f.newClaim("dpdk-a")
	f.allocate(claim, node, dev)
	owner := "claim/" + string(claim.UID)
	f.waitDevices(node, map[string]string{podPort: "InUse pod/" + string(first.UID), dev: "InUse " + owner})
	if p, _ := f.sim.Port(dev); tagValue(p.Tags, tagPrefixClaim) != string(claim.UID) || !f.attached(node, dev) {
		t.Fatalf("claimed port %s: tags %v, attached %v", dev, p.Tags, f.attached(node, dev))
	}
	// The pool refills below its min; a new pod gets one of those.
	f.createPod("second", node, "dataplane")
	if got := f.waitReady("second").Status.Interfaces[0].PortID; got == dev {
		t.Fatalf("pod second got port %s, which claim %s owns", got, claim.UID)
	}

	// Devices someone else has: another claim's, and a pod's.
	var refused []*resourcev1.ResourceClaim
	for name, taken := range map[string]string{"dpdk-b": dev, "dpdk-c": podPort} {
		c := f.newClaim(name)
		refused = append(refused, c)
		f.allocate(c, node, taken)
		f.eventually(20*time.Second, "a "+reasonDeviceInUse+" Event on claim "+name, func() (bool, string) {
			evs := f.events(name)
			return slices.ContainsFunc(evs, func(e string) bool {
				return strings.HasPrefix(e, reasonDeviceInUse+":") && strings.Contains(e, draDevicePrefix+taken)
			}), fmt.Sprint(evs)
		})
	}
	if p, _ := f.sim.Port(dev); tagValue(p.Tags, tagPrefixClaim) != string(claim.UID) {
		t.Fatalf("port %s tags %v after another claim asked for it", dev, p.Tags)
	}
	if p, _ := f.sim.Port(podPort); tagValue(p.Tags, tagPrefixPod) != string(first.UID) || tagValue(p.Tags, tagPrefixClaim) != "" {
		t.Fatalf("pod first's port %s tags %v after a claim asked for it", podPort, p.Tags)
	}

	// A claim of a Ready device deleted while the controller is down.
	f.eventually(20*time.Second, "a ready device for claim dpdk-d", func() (bool, string) {
		return len(f.readyPortIDs(node)) > 0, fmt.Sprint(f.readyPortIDs(node))
	})
	dev2 := f.readyPortIDs(node)[0]
	c2 := f.newClaim("dpdk-d")
	f.allocate(c2, node, dev2)
	f.eventually(20*time.Second, "port "+dev2+" tagged for claim dpdk-d", func() (bool, string) {
		p, _ := f.sim.Port(dev2)
		return tagValue(p.Tags, tagPrefixClaim) == string(c2.UID), fmt.Sprint(p.Tags)
	})
	f.waitPoolReady(node, 2) // refilled: the pool is idle at the kill
	stop()
	must(t, f.c.Delete(f.ctx, c2))
	f.opts.Pools.NestedDPDK.Min = 0 // the restarted pool makes nothing new
	f.startController()
	f.eventually(20*time.Second, "claim dpdk-d's device given back after the restart", func() (bool, string) {
		p, _ := f.sim.Port(dev2)
		return tagValue(p.Tags, tagPrefixClaim) == "" && slices.Contains(f.readyPortIDs(node), dev2) && f.attached(node, dev2),
			fmt.Sprintf("tags %v, ready %v", p.Tags, f.readyPortIDs(node))
	})
	// The rebuilt pool counts the first claim's port in use, by it.
	f.eventually(20*time.Second, "the claim's device in use after the restart", func() (bool, string) {
		st, err := f.kuryrNodeStatus(node)
		if err != nil {
			return false, err.Error()
		}
		i := slices.IndexFunc(st.DPDKDevices, func(d v1alpha1.DPDKDevice) bool { return d.PortID == dev })
		return i >= 0 && st.DPDKDevices[i].State == v1alpha1.DPDKDeviceInUse && st.DPDKDevices[i].Owner == owner &&
			!slices.Contains(f.readyPortIDs(node), dev), fmt.Sprintf("%+v, ready %v", st.DPDKDevices, f.readyPortIDs(node))
	})

	// The refused claims go (else one would take the device once free).
	for _, c := range refused {
		must(t, f.c.Delete(f.ctx, c))
	}
	f.allocate(claim, node, "")
	f.eventually(20*time.Second, "the deallocated claim's port back in the pool", func() (bool, string) {
		p, _ := f.sim.Port(dev)
		return tagValue(p.Tags, tagPrefixClaim) == "" && slices.Contains(f.readyPortIDs(node), dev) && f.attached(node, dev),
			fmt.Sprintf("tags %v, ready %v", p.Tags, f.readyPortIDs(node))
	})
}

// TestDPDKClaimGivesBackWhileSlotsFull: a node with 3 hot-plug slots, all
// in use (a pod's port and two pool ports), both pool ports taken by
// claims, so the pool is short and can attach nothing new: a claim
// deallocated gives its port back to the pool, still attached, and the
// pool shows it Ready again (found in the node VM: it stayed Attaching
// while the full slots held the pool's round back).
func TestDPDKClaimGivesBackWhileSlotsFull(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 2, Max: 2, Batch: 2}, map[string]string{v1alpha1.HotplugSlotsAnnotation: "3"})
	f.startController()
	f.createPod("first", node, "dataplane")
	f.waitReady("first")
	f.waitPoolReady(node, 2)
	devs := f.readyPortIDs(node)
	var claims []*resourcev1.ResourceClaim
	want := map[string]string{}
	for i, dev := range devs {
		c := f.newClaim(fmt.Sprintf("dpdk-%d", i))
		f.allocate(c, node, dev)
		claims = append(claims, c)
		want[dev] = "InUse claim/" + string(c.UID)
	}
	f.waitDevices(node, want)
	f.allocate(claims[0], node, "")
	want[devs[0]] = "Ready"
	f.waitDevices(node, want)
	if !f.attached(node, devs[0]) {
		t.Fatalf("port %s given back by its claim is not attached", devs[0])
	}
}

// TestDPDKPoolKilledMidFill: the controller is killed while the pool's
// batch of 3 is attached: Nova made the first attach but its answer never
// came back, the two others never reached Nova. The restarted controller
// rebuilds the pool from Neutron's tags, makes no new port, attaches only
// the two that were not (Nova is asked 3 times in all: no port twice),
// and hands each port to one pod; the KuryrNode counts 3 slots used.
func TestDPDKPoolKilledMidFill(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 3, Max: 3, Batch: 3}, map[string]string{v1alpha1.HotplugSlotsAnnotation: "5"})
	var holding atomic.Bool
	holding.Store(true)
	var held atomic.Int64
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/os-interface") && holding.Load() {
			// Read whole, so that the server sees the client go.
			_ = body(r)
			if held.Add(1) == 1 {
				// Nova attaches; its answer is lost.
				next.ServeHTTP(httptest.NewRecorder(), r)
			}
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
	stop := f.startController()
	f.createPod("p0", node, "dataplane")
	f.eventually(20*time.Second, "the batch's 3 attaches under way", func() (bool, string) {
		return held.Load() == 3, fmt.Sprint(held.Load(), " attaches held")
	})
	made := f.poolPorts()
	stop()
	holding.Store(false)
	if len(made) != 3 {
		t.Fatalf("killed with %d pool ports made, want the batch of 3", len(made))
	}
	attachedBefore := 0
	for id := range made {
		if f.attached(node, id) {
			attachedBefore++
		}
	}
	if attachedBefore != 1 || f.sim.Count("nova.interfaces.attach") != 1 {
		t.Fatalf("at the kill %d ports attached and Nova asked %d times, want 1 and 1", attachedBefore, f.sim.Count("nova.interfaces.attach"))
	}
	if kp, err := f.kuryrPod("p0"); err == nil && kp.Status.Interfaces != nil && kp.Status.Interfaces[0].PortID != "" {
		t.Fatalf("pod p0 had a port before the kill (%+v): the kill did not land mid-fill", kp.Status.Interfaces[0])
	}

	f.opts.Pools.NestedDPDK.Min = 0 // no refill: the pods must get the rebuilt ports
	creates := f.sim.Count("neutron.ports.create")
	f.startController()
	taken := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("p%d", i)
		if i > 0 {
			f.createPod(name, node, "dataplane")
		}
		id := f.waitReady(name).Status.Interfaces[0].PortID
		if _, ok := made[id]; !ok {
			t.Fatalf("pod %s got port %s, not one of the batch made before the kill %v", name, id, sortedKeys(made))
		}
		if other, dup := taken[id]; dup {
			t.Fatalf("port %s handed to %s and %s", id, other, name)
		}
		taken[id] = name
	}
	for id := range made {
		if !f.attached(node, id) {
			t.Fatalf("port %s of the batch is not attached", id)
		}
	}
	if n := f.sim.Count("neutron.ports.create") - creates; n != 0 {
		t.Fatalf("%d port creates after the restart, want none", n)
	}
	if a := f.sim.Count("nova.interfaces.attach"); a != 3 {
		t.Fatalf("Nova was asked for %d attaches in all, want 3 (one per port)", a)
	}
	if n := len(f.ourPorts()); n != 3 {
		t.Fatalf("%d ports of the cluster, want the 3 of the batch", n)
	}
	f.eventually(20*time.Second, "3 slots used in the KuryrNode", func() (bool, string) {
		st, err := f.kuryrNodeStatus(node)
		if err != nil {
			return false, err.Error()
		}
		return st.HotplugSlots != nil && st.HotplugSlots.Used == 3, fmt.Sprintf("%+v", st.HotplugSlots)
	})
}

// TestDPDKPoolSizeAnnotation: a node annotated with a DPDK pool size gets
// a pool of that size; a bad value gives one InvalidPoolSize Event on
// the Node and the configured size holds.
func TestDPDKPoolSizeAnnotation(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 1, Batch: 1}, map[string]string{DPDKPoolSizeAnnotation: "2,3"})
	f.startController()
	f.createPod("first", node, "dataplane")
	f.waitReady("first")
	f.waitPoolReady(node, 2)
	if st, _ := f.pool(node); st.Target != 2 || st.Max != 3 {
		t.Fatalf("pool %+v, want target 2 and max 3 from the annotation", st)
	}
	var n corev1.Node
	must(t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &n))
	n.Annotations[DPDKPoolSizeAnnotation] = "three"
	must(t, f.c.Update(f.ctx, &n))
	f.eventually(20*time.Second, "an InvalidPoolSize Event on the node and the configured size", func() (bool, string) {
		all, err := f.nodeEvents(node)
		if err != nil {
			return false, err.Error()
		}
		evs := slices.DeleteFunc(all, func(e string) bool { return !strings.HasPrefix(e, reasonBadPoolSize+":") })
		st, s := f.pool(node)
		return len(evs) == 1 && strings.Contains(evs[0], `"three"`) && st.Target == 1 && st.Max == 1, fmt.Sprintf("events %v, pool %s", all, s)
	})
}

// TestClaimDevices: of a claim's allocation results, those of our driver
// naming "port-<lowercase UUID>" of a pool are its devices; one of our
// driver with another name is an error naming the result and the device;
// other drivers' results and an unallocated claim give nothing.
func TestClaimDevices(t *testing.T) {
	t.Parallel()
	const id = "0b8a4ad1-6f3c-4f55-9a7e-1c2d3e4f5a6b"
	res := func(driver, pool, device string) resourcev1.DeviceRequestAllocationResult {
		return resourcev1.DeviceRequestAllocationResult{Request: "r", Driver: driver, Pool: pool, Device: device}
	}
	claim := &resourcev1.ResourceClaim{Status: resourcev1.ResourceClaimStatus{Allocation: &resourcev1.AllocationResult{
		Devices: resourcev1.DeviceAllocationResult{Results: []resourcev1.DeviceRequestAllocationResult{
			res(draDriver, "node-a", "port-"+id),
			res("gpu.example.com", "node-a", "gpu-0"),
			res(draDriver, "node-a", "port-../../etc"),
			res(draDriver, "node-a", "port-"+strings.ToUpper(id)),
			res(draDriver, "", "port-"+id),
		}},
	}}}
	got, errs := claimDevices(claim)
	if len(got) != 1 || got[0] != (claimedDevice{node: "node-a", portID: id, name: "port-" + id}) {
		t.Fatalf("devices %+v", got)
	}
	if len(errs) != 3 || !strings.Contains(errs[0].Error(), "results[2]") || !strings.Contains(errs[0].Error(), `"port-../../etc"`) {
		t.Fatalf("errors %v", errs)
	}
	if got, errs := claimDevices(&resourcev1.ResourceClaim{}); got != nil || errs != nil {
		t.Fatalf("unallocated claim: %v, %v", got, errs)
	}
}

// TestDPDKPoolRoundRewritesAKuryrNodeAnotherWriteChanged: the pools'
// round writes a node's KuryrNode only when what it would write differs
// from what the KuryrNode holds, and other paths write it too: a pod's
// take records the pod as the device's owner at once (recordOwners). A
// port taken and given back between two rounds leaves the round's view
// as it was; the KuryrNode, written by the take, still lists the device
// InUse, and the next round writes it back Ready. (TestDPDKPoolTakeAndRecycle
// failed this way under load: a round ran between the first and the
// second pod's takes, none while the second pod held its port.) Rounds
// with nothing new write nothing. The rounds are run here by the test, on
// the real API server: no timing.
func TestDPDKPoolRoundRewritesAKuryrNodeAnotherWriteChanged(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 2, Batch: 1}, nil)
	r, info, req := f.poolByRounds(f.c, node, 1)
	id := f.readyPortIDs(node)[0]
	state := func() string {
		d, err := f.devices(node)
		if err != nil {
			return err.Error()
		}
		return d[id]
	}
	if got := state(); got != "Ready" {
		t.Fatalf("after the rounds that filled the pool the KuryrNode lists port %s as %q, want Ready", id, got)
	}

	// A pod takes the port, and records itself as its owner before its
	// interface goes ACTIVE (wireAll); no round runs meanwhile.
	const uid = types.UID("6b1d2f9e-0c51-4d8e-9a44-3f0b7a2c5e11")
	w, ok, err := r.pools.take(f.ctx, info, uid, req, false)
	if !ok || err != nil || w.port.ID != id {
		t.Fatalf("take: port %s, ok %v, error %v; want port %s", w.port.ID, ok, err, id)
	}
	must(t, r.recordOwners(f.ctx, info))
	if got, want := state(), "InUse "+ownerPod+string(uid); got != want {
		t.Fatalf("after the take the KuryrNode lists port %s as %q, want %q", id, got, want)
	}
	// The pod goes: its port goes back to the pool, still attached.
	p, err := f.cloud.GetPort(f.ctx, id)
	must(t, err)
	if ok, err := r.pools.recycle(f.ctx, p); !ok || err != nil {
		t.Fatalf("recycle port %s: ok %v, error %v", id, ok, err)
	}
	f.eventually(20*time.Second, "the recycled port Ready in the KuryrNode", func() (bool, string) {
		r.pools.round(f.ctx)
		return state() == "Ready", fmt.Sprintf("pool %v, KuryrNode %q", f.readyPortIDs(node), state())
	})
	// Rounds with nothing new write nothing.
	before := f.kuryrNodeVersion(node)
	for range 3 {
		r.pools.round(f.ctx)
	}
	if after := f.kuryrNodeVersion(node); after != before {
		t.Errorf("three rounds with nothing new wrote the KuryrNode (version %s, then %s)", before, after)
	}
}

// TestDPDKPoolTakeSkipsAllocatedDevice: a Ready pool device that the
// scheduler allocated to a ResourceClaim (status.allocation written as it
// would), and that the claim controller has not processed yet, is not a
// pod's to take: the pod's take gets the pool's other Ready port, with one
// OpenStack request (its owner tag); the claim, processed next, gets its
// device (its tag on the port, InUse by it in the KuryrNode) instead of a
// DPDKDeviceInUse refusal. The controller is not started: the test runs
// the pools' rounds, the take and the claim's reconcile itself, on the
// real API server (no timing).
func TestDPDKPoolTakeSkipsAllocatedDevice(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 2, Max: 2, Batch: 2}, nil)
	r, info, req := f.poolByRounds(f.c, node, 2)
	// The claim is allocated the port a take would hand out first: the
	// pool's newest ready one.
	var dev, other string
	r.pools.mu.Lock()
	for k, p := range r.pools.byKey {
		if k.node == node && len(p.ready) == 2 {
			dev, other = p.ready[1].port.ID, p.ready[0].port.ID
		}
	}
	r.pools.mu.Unlock()
	if dev == "" {
		t.Fatalf("no pool of node %s with 2 ready ports: %v", node, f.readyPortIDs(node))
	}
	claim := f.newClaim("dpdk-a")
	f.allocate(claim, node, dev)

	const uid = types.UID("5c0e7a1b-2d3f-4a5b-8c6d-7e8f9a0b1c2d")
	before := f.calls.Load()
	w, ok, err := r.pools.take(f.ctx, info, uid, req, false)
	if !ok || err != nil || w.port.ID != other {
		t.Fatalf("take: port %s, ok %v, error %v; want port %s, not %s (allocated to claim %s)", w.port.ID, ok, err, other, dev, claim.UID)
	}
	if n := f.calls.Load() - before; n != 1 {
		t.Fatalf("the take made %d OpenStack requests, want 1", n)
	}
	if p, _ := f.sim.Port(dev); ownerOf(p.Tags) != "" {
		t.Fatalf("port %s allocated to claim %s has tags %v after a pod's take", dev, claim.UID, p.Tags)
	}

	res, err := (&claimReconciler{r: r}).Reconcile(f.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: claim.Name}})
	if err != nil || !res.IsZero() {
		t.Fatalf("the claim's reconcile: %+v, %v; want its device taken", res, err)
	}
	if p, _ := f.sim.Port(dev); tagValue(p.Tags, tagPrefixClaim) != string(claim.UID) || !f.attached(node, dev) {
		t.Fatalf("claimed port %s: tags %v, attached %v", dev, p.Tags, f.attached(node, dev))
	}
	f.waitDevices(node, map[string]string{dev: "InUse claim/" + string(claim.UID), other: "InUse pod/" + string(uid)})
}

// TestKuryrNodeWriteLostToAConflictRedoneByTheNextRound: a KuryrNode
// write that fails is redone by the pools' next round, whichever path
// made it. Here the path is the release of a pod's own (unpooled) DPDK
// port, after which the KuryrNode must no longer list its device, and the
// failure a conflict: the KuryrNode is written by someone else between
// the controller's read and its update, on the real API server.
func TestKuryrNodeWriteLostToAConflictRedoneByTheNextRound(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 2, Batch: 1}, nil)
	var conflict atomic.Bool
	base, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme})
	must(t, err)
	c := interceptor.NewClient(base, interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if _, ok := obj.(*v1alpha1.KuryrNode); ok && conflict.Swap(false) {
				var kn v1alpha1.KuryrNode
				must(t, f.c.Get(ctx, client.ObjectKeyFromObject(obj), &kn))
				metav1.SetMetaDataAnnotation(&kn.ObjectMeta, "test/touched", "yes")
				must(t, f.c.Update(ctx, &kn))
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	r, info, _ := f.poolByRounds(c, node, 1)
	// A pod's own port attached to the node's VM (as dpdkDriver.wire
	// records it), listed in the KuryrNode.
	own := openstack.Port{ID: "1f6a3c4e-8b2d-4e5f-9a7b-0c1d2e3f4a5b", MACAddress: "fa:16:3e:00:00:42", NetworkID: f.dpNet.NetworkID,
		Tags: []string{tagPrefixPod + "0d9c6b2a-4e1f-4a3b-8c7d-5e6f7a8b9c0d"}, FixedIPs: []openstack.FixedIP{{SubnetID: f.dpNet.ID}}}
	r.attached.put(info.ServerID, own)
	must(t, r.recordNode(f.ctx, info))
	listed := func() bool {
		d, err := f.devices(node)
		must(t, err)
		_, ok := d[own.ID]
		return ok
	}
	if !listed() {
		t.Fatalf("the KuryrNode does not list the pod's own port %s", own.ID)
	}
	// Its pod goes: the port is detached (unwire forgets it) and the
	// KuryrNode written (releasePort's recordServer), which conflicts.
	r.attached.forget(own.ID)
	conflict.Store(true)
	r.recordServer(f.ctx, info.ServerID)
	if conflict.Load() || !listed() {
		t.Fatalf("the write after the release did not meet the conflict (armed %v, port still listed %v)", conflict.Load(), listed())
	}
	r.pools.round(f.ctx)
	if listed() {
		t.Errorf("after the next round the KuryrNode still lists the released port %s", own.ID)
	}
}

// poolByRounds makes a controller on client c that is not started, and
// fills node's nested-dpdk pool by running its rounds (the test runs
// them: no timing), until the pool has ready ready ports; it returns the
// controller, the node and an interface request the pool serves.
func (f *fixture) poolByRounds(c client.Client, node string, ready int) (*PodReconciler, nodeInfo, v1alpha1.InterfaceRequest) {
	f.t.Helper()
	r := NewPodReconciler(c, f.cloud, nil, f.opts, nil)
	f.rec.Store(r)
	must(f.t, r.pools.rebuild(f.ctx))
	read := r.nodes.read()
	var nodeObj corev1.Node
	must(f.t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &nodeObj))
	info, _, err := r.nodes.resolve(f.ctx, &nodeObj, read)
	must(f.t, err)
	info.Pools = r.pools.nodePoolSizes(f.ctx, &nodeObj)
	req := v1alpha1.InterfaceRequest{IfName: "net1", Driver: v1alpha1.DriverNestedDPDK, Network: "dataplane",
		SubnetID: f.dpNet.ID, SecurityGroups: []string{f.sg}}
	// The first take misses and makes the pool.
	if _, ok, err := r.pools.take(f.ctx, info, "", req, false); ok || !errors.Is(err, errWaitPool) {
		f.t.Fatalf("first take from a pool not filled yet: ok %v, error %v; want a miss that waits for the pool", ok, err)
	}
	f.eventually(20*time.Second, "the pool filled by the rounds", func() (bool, string) {
		r.pools.round(f.ctx)
		st, s := f.pool(node)
		return st.Ready == ready && st.Warming == 0, s
	})
	return r, info, req
}

// kuryrNodeVersion is the resource version of node's KuryrNode.
func (f *fixture) kuryrNodeVersion(node string) string {
	f.t.Helper()
	var kn v1alpha1.KuryrNode
	must(f.t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn))
	return kn.ResourceVersion
}

// poolAttached checks that the cloud holds n pool ports, each attached to
// node's server, and that Nova was asked for n attaches in all.
func (f *fixture) poolAttached(node string, n int) {
	f.t.Helper()
	if got := len(f.poolPorts()); got != n {
		f.t.Fatalf("%d pool ports in the cloud, want %d", got, n)
	}
	for pid := range f.poolPorts() {
		if !f.attached(node, pid) {
			f.t.Fatalf("pool port %s is not attached to the node's server", pid)
		}
	}
	if a := f.sim.Count("nova.interfaces.attach"); a != int64(n) {
		f.t.Fatalf("Nova was asked for %d attaches, want %d", a, n)
	}
}
