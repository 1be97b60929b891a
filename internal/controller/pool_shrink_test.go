package controller

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// unaccounted lists what of ours in the cloud nothing accounts for: a port
// that is no consumer's (no pod or claim tag) and not ready in the running
// controller's pools of node, and a subport of node's trunk, an allowed
// address pair of its VM's port or a port attached to its server that is
// not one of our ports.
func (f *fixture) unaccounted(node string) []string {
	f.t.Helper()
	ready := f.readyPortIDs(node)
	ours := map[string]cloudsim.Port{}
	var out []string
	for _, p := range f.ourPorts() {
		ours[p.ID] = p
		if ownerOf(p.Tags) == "" && !slices.Contains(ready, p.ID) {
			out = append(out, fmt.Sprintf("port %s (tags %v) is no consumer's and not ready in the pool %v", p.ID, p.Tags, ready))
		}
	}
	srv := f.servers[node]
	subs, ok := f.sim.Subports(srv.TrunkID)
	if !ok {
		out = append(out, fmt.Sprintf("trunk %s of node %s not found: its subports cannot be counted", srv.TrunkID, node))
	}
	for _, s := range subs {
		if _, mine := ours[s.PortID]; !mine {
			out = append(out, fmt.Sprintf("subport %s (VLAN %d) is not a port of ours", s.PortID, s.SegmentationID))
		}
	}
	vm, _ := f.sim.Port(srv.ParentPort.ID)
	for _, a := range vm.AllowedAddressPairs {
		if !slices.ContainsFunc(slices.Collect(maps.Values(ours)), func(p cloudsim.Port) bool {
			return len(p.FixedIPs) > 0 && p.FixedIPs[0].IPAddress == a.IPAddress && strings.EqualFold(p.MACAddress, a.MACAddress)
		}) {
			out = append(out, fmt.Sprintf("allowed address pair %s %s of the VM's port is no port of ours", a.IPAddress, a.MACAddress))
		}
	}
	for _, p := range f.sim.Ports() {
		if _, mine := ours[p.ID]; p.DeviceID == srv.Server.ID && p.ID != srv.ParentPort.ID && !mine {
			out = append(out, fmt.Sprintf("port %s attached to the node's server is not a port of ours", p.ID))
		}
	}
	return out
}

// portRequest returns the port ID of a request to .../v2.0/ports/{id}
// (not to a sub-resource such as its tags), "" otherwise.
func portRequest(r *http.Request) string {
	_, rest, ok := strings.Cut(r.URL.Path, "/v2.0/ports/")
	if !ok || strings.Contains(rest, "/") {
		return ""
	}
	return rest
}

// TestPoolShrinksToLoweredMax: a nested-vlan pool of max 4 (4 ready, and a
// pod holding a fifth pool port) whose max the options lower to 2 before
// a restart releases its ready ports past 2: off the trunk, then deleted.
// The controller is killed mid-shrink (the first port off the trunk, its
// delete held until the client goes); the next one finishes: 2 ready
// ports left, the pods' ports untouched (same VLAN IDs and tags), 2 ports
// deleted in all, and nothing of ours in the cloud unaccounted for.
func TestPoolShrinksToLoweredMax(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 4, Max: 4, Batch: 4}
	stop := f.startController()
	f.createPod("first", node, "")
	f.waitReady("first")
	f.waitPoolReady(node, 4)
	second := f.createPod("second", node, "")
	taken := f.waitReady("second").Status.Interfaces[0].PortID
	if _, pooled := f.poolPorts()[taken]; !pooled {
		t.Fatalf("pod second's port %s is not a pool port", taken)
	}
	f.waitPoolReady(node, 4) // refilled to min after the take
	if n := len(f.poolPorts()); n != 5 {
		t.Fatalf("%d pool ports before the shrink, want 5 (4 ready, 1 in use)", n)
	}
	stop()
	vlans := map[string]int{} // the pods' ports and their VLAN IDs
	tags := map[string][]string{}
	for _, p := range f.ourPorts() {
		if ownerOf(p.Tags) != "" {
			vlans[p.ID], tags[p.ID] = f.subportVLAN(node, p.ID), p.Tags
		}
	}
	if len(vlans) != 2 || vlans[taken] == 0 {
		t.Fatalf("pods' ports %v, want 2 subports, pod second's %s among them", vlans, taken)
	}

	var holding atomic.Bool
	holding.Store(true)
	held := make(chan string, 1)
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if id := portRequest(r); r.Method == http.MethodDelete && id != "" && holding.Load() {
			select {
			case held <- id:
			default:
			}
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
	f.opts.Pools.NestedVLAN = PoolSize{Min: 1, Max: 2, Batch: 1}
	deletes := f.sim.Count("neutron.ports.delete")
	stop = f.startController()
	var leaving string
	select {
	case leaving = <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the shrink's first port delete never came")
	}
	stop()
	holding.Store(false)
	// The kill landed mid-shrink: the port is off the trunk, not deleted.
	if _, ok := f.sim.Port(leaving); !ok || f.subportVLAN(node, leaving) != 0 {
		t.Fatalf("at the kill port %s: present %v, VLAN %d; want present and off the trunk", leaving, ok, f.subportVLAN(node, leaving))
	}
	if _, pods := vlans[leaving]; pods {
		t.Fatalf("the shrink released port %s, a pod's", leaving)
	}
	if n := f.sim.Count("neutron.ports.delete") - deletes; n != 0 {
		t.Fatalf("%d deletes reached the cloud before the kill, want none", n)
	}
	t.Logf("killed with pool port %s off the trunk and its delete held", leaving)

	f.startController()
	f.eventually(20*time.Second, "the pool at its new max", func() (bool, string) {
		st, s := f.pool(node)
		return st.Ready == 2 && st.Warming == 0 && st.InUse == 1 && st.Max == 2 && len(f.poolPorts()) == 3,
			fmt.Sprintf("%s, %d pool ports", s, len(f.poolPorts()))
	})
	if n := f.sim.Count("neutron.ports.delete") - deletes; n != 2 {
		t.Errorf("%d ports deleted, want 2 (4 ready down to 2)", n)
	}
	for id, vlan := range vlans {
		p, ok := f.sim.Port(id)
		if !ok || f.subportVLAN(node, id) != vlan || !slices.Equal(p.Tags, tags[id]) {
			t.Errorf("pod port %s: present %v, VLAN %d (was %d), tags %v (were %v)", id, ok, f.subportVLAN(node, id), vlan, p.Tags, tags[id])
		}
	}
	if p, _ := f.sim.Port(taken); tagValue(p.Tags, tagPrefixPod) != string(second.UID) {
		t.Errorf("pod second's port %s tags %v", taken, p.Tags)
	}
	for _, id := range f.readyPortIDs(node) {
		if f.subportVLAN(node, id) == 0 {
			t.Errorf("ready pool port %s is not a subport", id)
		}
	}
	if u := f.unaccounted(node); len(u) > 0 {
		t.Errorf("unaccounted for: %v", u)
	}
}

// TestPoolShrinkMACVLANByAnnotation: a nested-macvlan pool sized by the
// options (min 3, max 3; 3 ready, a pod holding a fourth port) shrinks
// when the node's kuryr-dpdk.io/macvlan-pool-size annotation lowers it to
// "1,1" at run time: 2 ready ports leave the VM port's allowed address
// pairs and are deleted, the pod's stays a pair with its tag, the pool's
// target and max are the annotation's, and nothing of ours is left
// unaccounted for.
func TestPoolShrinkMACVLANByAnnotation(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.DefaultDriver = v1alpha1.DriverNestedMACVLAN
	f.opts.Pools.NestedMACVLAN = PoolSize{Min: 3, Max: 3, Batch: 3}
	f.startController()
	f.createPod("first", node, "")
	f.waitReady("first")
	f.waitPoolReady(node, 3)
	second := f.createPod("second", node, "")
	taken := f.waitReady("second").Status.Interfaces[0].PortID
	f.waitPoolReady(node, 3)
	before := f.poolPorts()
	if len(before) != 4 {
		t.Fatalf("%d pool ports, want 4 (3 ready, pod second's)", len(before))
	}
	deletes := f.sim.Count("neutron.ports.delete")

	f.annotateNode(node, v1alpha1.MACVLANPoolSizeAnnotation, "1,1")
	f.eventually(20*time.Second, "the pool down to the annotation's max", func() (bool, string) {
		st, s := f.pool(node)
		return st.Ready == 1 && st.Warming == 0 && st.InUse == 1 && st.Target == 1 && st.Max == 1 && len(f.poolPorts()) == 2,
			fmt.Sprintf("%s, %d pool ports", s, len(f.poolPorts()))
	})
	if n := f.sim.Count("neutron.ports.delete") - deletes; n != 2 {
		t.Errorf("%d ports deleted, want 2", n)
	}
	if p, ok := f.sim.Port(taken); !ok || tagValue(p.Tags, tagPrefixPod) != string(second.UID) {
		t.Errorf("pod second's port %s: present %v, tags %v", taken, ok, p.Tags)
	}
	if u := f.unaccounted(node); len(u) > 0 {
		t.Errorf("unaccounted for: %v", u)
	}
	vm, _ := f.sim.Port(f.servers[node].ParentPort.ID)
	for id, p := range before {
		_, present := f.sim.Port(id)
		pair := slices.ContainsFunc(vm.AllowedAddressPairs, func(a cloudsim.AddressPair) bool { return a.IPAddress == p.FixedIPs[0].IPAddress })
		if present != pair {
			t.Errorf("pool port %s: present %v, allowed pair %v", id, present, pair)
		}
	}
}

// TestDPDKPoolShrinkSparesConsumers: a node's DPDK pool (min 3, max 3)
// with a pod's device and a claim's device in use and 3 ready is lowered
// to "0,1" by the node's annotation at run time: 2 ready ports are
// detached by Nova and deleted, the pod's and the claim's stay attached
// with their tags, and the KuryrNode lists the 3 left. The controller is
// killed while the answer of the shrink's first Nova detach is lost (the
// detach made, the port not deleted); the restarted one accounts for
// every port: 1 ready, 2 in use, 2 deleted in all, nothing attached or
// left in the cloud that is not one of them.
func TestDPDKPoolShrinkSparesConsumers(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 3, Max: 3, Batch: 3}, nil)
	var holding atomic.Bool
	held := make(chan string, 1)
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/os-interface/") && holding.Load() {
			// Nova detaches; its answer is lost.
			next.ServeHTTP(httptest.NewRecorder(), r)
			select {
			case held <- path.Base(r.URL.Path):
			default:
			}
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
	stop := f.startController()
	pod := f.createPod("first", node, "dataplane")
	podPort := f.waitReady("first").Status.Interfaces[0].PortID
	f.waitPoolReady(node, 3)
	claim := f.newClaim("dpdk-a")
	claimPort := f.readyPortIDs(node)[0]
	f.allocate(claim, node, claimPort)
	f.waitDevices(node, map[string]string{podPort: "InUse pod/" + string(pod.UID), claimPort: "InUse claim/" + string(claim.UID)})
	f.waitPoolReady(node, 3) // refilled after the claim's take
	if n := len(f.poolPorts()); n != 5 {
		t.Fatalf("%d pool ports before the shrink, want 5 (3 ready, the pod's, the claim's)", n)
	}
	deletes := f.sim.Count("neutron.ports.delete")

	holding.Store(true)
	f.annotateNode(node, DPDKPoolSizeAnnotation, "0,1")
	var leaving string
	select {
	case leaving = <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the shrink's first Nova detach never came")
	}
	stop()
	holding.Store(false)
	if _, ok := f.sim.Port(leaving); !ok || f.attached(node, leaving) || leaving == podPort || leaving == claimPort {
		t.Fatalf("at the kill port %s: present %v, attached %v; want a ready port, detached and not deleted", leaving, ok, f.attached(node, leaving))
	}
	t.Logf("killed with pool port %s detached and not deleted", leaving)

	f.startController()
	f.eventually(30*time.Second, "the pool down to the annotation's max", func() (bool, string) {
		st, s := f.pool(node)
		return st.Ready == 1 && st.Warming == 0 && st.InUse == 2 && st.Max == 1 && len(f.poolPorts()) == 3,
			fmt.Sprintf("%s, %d pool ports", s, len(f.poolPorts()))
	})
	if n := f.sim.Count("neutron.ports.delete") - deletes; n != 2 {
		t.Errorf("%d ports deleted, want 2", n)
	}
	for id, owner := range map[string]string{podPort: string(pod.UID), claimPort: string(claim.UID)} {
		p, ok := f.sim.Port(id)
		if !ok || !f.attached(node, id) || (tagValue(p.Tags, tagPrefixPod) != owner && tagValue(p.Tags, tagPrefixClaim) != owner) {
			t.Errorf("consumer's port %s: present %v, attached %v, tags %v; want %s's, attached", id, ok, f.attached(node, id), p.Tags, owner)
		}
	}
	ready := f.readyPortIDs(node)
	if len(ready) != 1 || !f.attached(node, ready[0]) {
		t.Fatalf("ready ports %v, want one, attached", ready)
	}
	want := map[string]string{podPort: "InUse pod/" + string(pod.UID), claimPort: "InUse claim/" + string(claim.UID), ready[0]: "Ready"}
	f.eventually(20*time.Second, fmt.Sprintf("the KuryrNode listing exactly the DPDK devices %v", want), func() (bool, string) {
		got, err := f.devices(node)
		return err == nil && maps.Equal(got, want), fmt.Sprint(got, err)
	})
	if u := f.unaccounted(node); len(u) > 0 {
		t.Errorf("unaccounted for: %v", u)
	}
}

// TestDPDKPoolShrinkKeepsAllocatedDevice: a ready DPDK pool port that a
// ResourceClaim's allocation names (here under another pool name, so the
// claim controller never takes it: the window between the scheduler's
// allocation and the claim's take, held open) is kept when the node's
// annotation lowers the pool from 3 to 1, although it is the port the
// shrink would release first; the two others are released.
func TestDPDKPoolShrinkKeepsAllocatedDevice(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 3, Max: 3, Batch: 3}, nil)
	f.opts.Pools.NestedDPDKNetworks = []PoolNetwork{{SubnetID: f.dpNet.ID, SecurityGroups: []string{f.sg}}}
	f.startController()
	f.waitPoolReady(node, 3)
	r := f.rec.Load()
	r.pools.mu.Lock()
	var first string
	for k, p := range r.pools.byKey {
		if k.node == node && len(p.ready) > 0 {
			first = p.ready[0].port.ID // the oldest: the shrink's first pick
		}
	}
	r.pools.mu.Unlock()
	claim := f.newClaim("dpdk-a")
	f.allocate(claim, node+"-elsewhere", first)

	f.annotateNode(node, DPDKPoolSizeAnnotation, "0,1")
	f.eventually(20*time.Second, "the pool down to 1 ready port", func() (bool, string) {
		st, s := f.pool(node)
		return st.Ready == 1 && st.Warming == 0 && len(f.poolPorts()) == 1, fmt.Sprintf("%s, %d pool ports", s, len(f.poolPorts()))
	})
	if got := f.readyPortIDs(node); !slices.Equal(got, []string{first}) || !f.attached(node, first) {
		t.Fatalf("ready ports %v (attached %v), want the allocated %s kept", got, f.attached(node, first), first)
	}
}
