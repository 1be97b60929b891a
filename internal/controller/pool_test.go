package controller

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// interpose routes the cloud requests of the controllers started from now
// on through mw, which reaches the simulated cloud with next. Requests
// whose timeout is short enough let a test lose answers on purpose.
func (f *fixture) interpose(timeout time.Duration, mw func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	f.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mw(w, r, f.sim) }))
	f.t.Cleanup(srv.Close)
	f.sim.SetBaseURL(srv.URL)
	f.cloud = f.newCloudClient(timeout)
}

// body reads r's body and puts it back.
func body(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// subportsIn counts the subports an add_subports request carries.
func subportsIn(b string) int {
	var v struct {
		SubPorts []json.RawMessage `json:"sub_ports"`
	}
	_ = json.Unmarshal([]byte(b), &v)
	return len(v.SubPorts)
}

// poolPorts are the ports in the cloud tagged for this test's pools, by ID.
func (f *fixture) poolPorts() map[string]cloudsim.Port {
	out := map[string]cloudsim.Port{}
	for _, p := range f.ourPorts() {
		if tagValue(p.Tags, tagPrefixPool) != "" {
			out[p.ID] = p
		}
	}
	return out
}

// pool returns the running controller's one pool of node.
func (f *fixture) pool(node string) (v1alpha1.NodePool, string) {
	r := f.rec.Load()
	if r == nil {
		return v1alpha1.NodePool{}, "no controller"
	}
	st := r.pools.byNode()[node]
	if len(st) != 1 {
		return v1alpha1.NodePool{}, fmt.Sprintf("%d pools of node %s: %+v", len(st), node, st)
	}
	return st[0], fmt.Sprintf("%+v", st[0])
}

// readyPortIDs are the IDs of the ready ports of the running controller's
// pools of node.
func (f *fixture) readyPortIDs(node string) []string {
	r := f.rec.Load()
	r.pools.mu.Lock()
	defer r.pools.mu.Unlock()
	var ids []string
	for k, p := range r.pools.byKey {
		if k.node == node {
			for _, w := range p.ready {
				ids = append(ids, w.port.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

func (f *fixture) waitPoolReady(node string, ready int) {
	f.t.Helper()
	f.eventually(20*time.Second, fmt.Sprintf("pool of %s with %d ready ports", node, ready), func() (bool, string) {
		st, s := f.pool(node)
		return st.Ready == ready && st.Warming == 0, s
	})
}

// subportVLAN returns port id's VLAN ID on the node's trunk (0: not a
// subport). A trunk that is gone fails the test.
func (f *fixture) subportVLAN(node, id string) int {
	f.t.Helper()
	subs, ok := f.sim.Subports(f.servers[node].TrunkID)
	if !ok {
		f.t.Fatalf("trunk %s of node %s not found", f.servers[node].TrunkID, node)
	}
	for _, s := range subs {
		if s.PortID == id {
			return s.SegmentationID
		}
	}
	return 0
}

// TestPoolFillTakeRecycle: the first pod misses and makes the pool, which
// fills to min with one bulk create and one add_subports; the next pod
// takes a pooled port with one Neutron call (its owner tag) and reports
// the subport's VLAN ID; its release gives the port back to the pool
// instead of deleting it; the garbage collector leaves pool ports alone.
func TestPoolFillTakeRecycle(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 3, Max: 4, Batch: 4}
	f.startController()

	f.createPod("first", node, "")
	f.waitReady("first")
	f.waitPoolReady(node, 4)
	if n := len(f.poolPorts()); n != 4 {
		t.Fatalf("%d pool ports in the cloud, want 4", n)
	}
	for id := range f.poolPorts() {
		if f.subportVLAN(node, id) == 0 {
			t.Fatalf("pool port %s is not a subport of the node's trunk", id)
		}
	}
	// The first pod's own port (unpooled path) and the pool's batch; the
	// pod's subport may share the batch's add_subports (batch.go).
	if c, a := f.sim.Count("neutron.ports.create"), f.sim.Count("neutron.trunks.add_subports"); c != 2 || a < 1 || a > 2 {
		t.Fatalf("port creates %d and add_subports %d, want 2 and 1 or 2 (the first pod's and one per batch)", c, a)
	}

	before, counts := f.calls.Load(), f.sim.Counts()
	f.createPod("second", node, "")
	kp := f.waitReady("second")
	if n := f.calls.Load() - before; n != 1 {
		t.Fatalf("the pooled pod's path made %d OpenStack requests, want 1 (%v)", n, countsSince(counts, f.sim.Counts()))
	}
	st := kp.Status.Interfaces[0]
	pp, pooled := f.poolPorts()[st.PortID]
	if !pooled || tagValue(pp.Tags, tagPrefixPod) != string(kp.Spec.PodUID) {
		t.Fatalf("second pod's port %s: pooled %v, tags %v", st.PortID, pooled, pp.Tags)
	}
	if vid := f.subportVLAN(node, st.PortID); st.VLANID == 0 || st.VLANID != vid {
		t.Fatalf("status VLAN ID %d, trunk says %d", st.VLANID, vid)
	}
	if got, _ := f.pool(node); got.Ready != 3 || got.InUse != 1 {
		t.Fatalf("after the take the pool is %+v, want 3 ready and 1 in use", got)
	}
	// What an operator reads of it: the first pod missed (no pool yet),
	// the second hit; the size gauges follow the pool; the fill was timed.
	m := f.rec.Load().metrics
	vlan := string(v1alpha1.DriverNestedVLAN)
	if hit, miss := testutil.ToFloat64(m.poolTakes.WithLabelValues(vlan, "hit")), testutil.ToFloat64(m.poolTakes.WithLabelValues(vlan, "miss")); hit != 1 || miss != 1 {
		t.Fatalf("kuryr_controller_pool_takes_total: hit %v, miss %v, want 1 and 1", hit, miss)
	}
	f.eventually(20*time.Second, "kuryr_controller_pool_ports", func() (bool, string) {
		ready, inUse := testutil.ToFloat64(m.poolPorts.WithLabelValues(vlan, "ready")), testutil.ToFloat64(m.poolPorts.WithLabelValues(vlan, "in_use"))
		return ready == 3 && inUse == 1, fmt.Sprintf("ready %v, in_use %v, want 3 and 1", ready, inUse)
	})
	if n := histogramCount(t, m.poolFill); n < 1 {
		t.Fatalf("kuryr_controller_pool_fill_seconds observed %d fills, want at least 1", n)
	}

	deletes := f.sim.Count("neutron.ports.delete")
	f.deletePod("second")
	f.waitGone("second")
	f.waitPoolReady(node, 4)
	p, ok := f.sim.Port(st.PortID)
	if !ok || tagValue(p.Tags, tagPrefixPod) != "" || f.subportVLAN(node, st.PortID) != st.VLANID {
		t.Fatalf("recycled port %s: present %v, tags %v, VLAN %d", st.PortID, ok, p.Tags, f.subportVLAN(node, st.PortID))
	}
	if !slices.Contains(f.readyPortIDs(node), st.PortID) {
		t.Fatalf("recycled port %s is not ready in the pool: %v", st.PortID, f.readyPortIDs(node))
	}
	if n := f.sim.Count("neutron.ports.delete"); n != deletes {
		t.Fatalf("release deleted %d ports, want none (recycled)", n-deletes)
	}

	f.eventually(20*time.Second, "the pool in the KuryrNode", func() (bool, string) {
		var kn v1alpha1.KuryrNode
		if err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn); err != nil {
			return false, err.Error()
		}
		ps := kn.Status.Pools
		return len(ps) == 1 && ps[0].Ready == 4 && ps[0].InUse == 0 && ps[0].Target == 3 && ps[0].Max == 4 &&
			ps[0].Driver == v1alpha1.DriverNestedVLAN && slices.Equal(ps[0].SecurityGroups, []string{f.sg}), fmt.Sprintf("%+v", ps)
	})
	if _, err := NewGarbageCollector(f.rec.Load()).Collect(f.ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.poolPorts()); n != 4 {
		t.Fatalf("after GC %d pool ports, want 4", n)
	}
}

// histogramCount returns how many observations h holds.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var out dto.Metric
	if err := h.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}

func without[V any](m map[string]V, key string) map[string]V {
	out := map[string]V{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// countsSince returns the cloud's request counts that grew since before.
func countsSince(before, now map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for op, n := range now {
		if n > before[op] {
			out[op] = n - before[op]
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPoolNotFilledReported: a pool whose batch the subnet cannot hold is
// reported with the cloud's reason (a Warning Event on the node, the
// pool's last error in its KuryrNode), the pod is served the unpooled way,
// and the KuryrNode records the pool for kuryrctl pools.
func TestPoolNotFilledReported(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	_, tiny, err := f.sim.SeedNetwork("tiny", "10.9.0.0/28")
	must(t, err)
	f.opts.PodSubnetID = tiny.ID
	f.opts.Pools.NestedVLAN = PoolSize{Min: 16, Max: 16, Batch: 16}
	f.startController()
	f.createPod("first", node, "")
	f.waitReady("first")

	f.eventually(20*time.Second, "a Warning Event on the node with the cloud's reason", func() (bool, string) {
		var list corev1.EventList
		if err := f.c.List(f.ctx, &list); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Name == node {
				seen = append(seen, e.Reason+": "+e.Message)
				if e.Reason == reasonPoolFill && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "No more IP addresses") {
					return true, ""
				}
			}
		}
		return false, fmt.Sprint(seen)
	})
	f.eventually(20*time.Second, "the pool and its error in the KuryrNode", func() (bool, string) {
		var kn v1alpha1.KuryrNode
		if err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn); err != nil {
			return false, err.Error()
		}
		ps := kn.Status.Pools
		return len(ps) == 1 && ps[0].SubnetID == tiny.ID && ps[0].Target == 16 && ps[0].Ready == 0 &&
			strings.Contains(ps[0].LastError, "IpAddressGenerationFailure"), fmt.Sprintf("%+v", ps)
	})
	if n := len(f.poolPorts()); n != 0 {
		t.Fatalf("%d pool ports made on a subnet that cannot hold the batch", n)
	}
}

// TestPoolWiringFailureReported: a refill whose wiring the cloud refuses
// is reported as one whose create fails: a Warning Event PoolNotFilled on
// the node naming the pool's subnet, with the cloud's reason, and the
// pool's last error in its KuryrNode. nested-macvlan: a declared pool of
// 11 ports on a VM port that takes 10 allowed address pairs (Neutron's
// default max_allowed_address_pair); nested-vlan: add_subports refused by
// the cloud's policy. The wiring is tried every round, but the failures
// count (and are reported) at the pace of the pool's backoff: at most 3
// in the first 5 s (2 s, then 4 s), not one a round.
func TestPoolWiringFailureReported(t *testing.T) {
	for _, c := range []struct {
		driver v1alpha1.Driver
		reason string // in the Event and the last error
	}{
		{v1alpha1.DriverNestedMACVLAN, "AllowedAddressPairExhausted"},
		{v1alpha1.DriverNestedVLAN, "injected fault on neutron.trunks.add_subports"},
	} {
		t.Run(string(c.driver), func(t *testing.T) {
			f := newFixture(t, 1)
			node := f.ns + "-node-0"
			nets := []PoolNetwork{{SubnetID: f.podSubnet}}
			if c.driver == v1alpha1.DriverNestedMACVLAN {
				f.opts.Pools.NestedMACVLAN, f.opts.Pools.NestedMACVLANNetworks = PoolSize{Min: 11, Max: 11, Batch: 11}, nets
			} else {
				f.opts.Pools.NestedVLAN, f.opts.Pools.NestedVLANNetworks = PoolSize{Min: 2, Max: 2, Batch: 2}, nets
				f.sim.SetFault("neutron.trunks.add_subports", cloudsim.Fault{Rate: 1, Status: http.StatusForbidden})
			}
			f.startController()
			f.eventually(20*time.Second, "a PoolNotFilled Warning Event on the node with the cloud's reason", func() (bool, string) {
				var list corev1.EventList
				if err := f.c.List(f.ctx, &list); err != nil {
					return false, err.Error()
				}
				var seen []string
				for _, e := range list.Items {
					if e.InvolvedObject.Kind != "Node" || e.InvolvedObject.Name != node {
						continue
					}
					seen = append(seen, e.Type+" "+e.Reason+": "+e.Message)
					if e.Reason == reasonPoolFill && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, c.reason) &&
						strings.Contains(e.Message, string(c.driver)) && strings.Contains(e.Message, f.podSubnet) {
						return true, ""
					}
				}
				return false, fmt.Sprint(seen)
			})
			first := time.Now()
			f.eventually(20*time.Second, "the pool's error in the KuryrNode", func() (bool, string) {
				var kn v1alpha1.KuryrNode
				if err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn); err != nil {
					return false, err.Error()
				}
				ps := kn.Status.Pools
				return len(ps) == 1 && ps[0].Ready == 0 && strings.Contains(ps[0].LastError, c.reason), fmt.Sprintf("%+v", ps)
			})
			time.Sleep(time.Until(first.Add(5 * time.Second)))
			r := f.rec.Load()
			r.pools.mu.Lock()
			key := newPoolKey(node, c.driver, f.podSubnet, []string{f.sg})
			p := r.pools.byKey[key]
			failures := -1
			if p != nil {
				failures = p.failures
			}
			r.pools.mu.Unlock()
			if failures < 1 || failures > 3 {
				t.Fatalf("the pool counted %d failed refills within about 5 s of the first, want 1 to 3 (its backoff, not one a round)", failures)
			}
		})
	}
}

// TestPoolRefillBacksOff: refills that fail are tried again after 2 s, 4 s,
// ... up to a minute, not every round.
func TestPoolRefillBacksOff(t *testing.T) {
	t.Parallel()
	p := newPool(PoolSize{Min: 2, Max: 4, Batch: 2})
	now := time.Now()
	if !p.short(now) {
		t.Fatal("an empty pool with min 2 does not want a refill")
	}
	var waits []time.Duration
	for range 8 {
		p.failed(now)
		waits = append(waits, p.notBefore.Sub(now))
		if p.short(now) || !p.short(p.notBefore) {
			t.Fatalf("after %d failures: refill wanted at once %v, at notBefore %v", p.failures, p.short(now), p.short(p.notBefore))
		}
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
}

// TestPoolMACVLANAndNodeGone: a nested-macvlan pool fills with one bulk
// create and one update of the VM port's allowed address pairs, a pod
// takes a pooled port with one call, and when the Node is deleted the
// pool's idle port is released (off the VM's port, deleted) while the
// pod's stays.
func TestPoolMACVLANAndNodeGone(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	vm := f.servers[node].ParentPort.ID
	f.opts.DefaultDriver = v1alpha1.DriverNestedMACVLAN
	f.opts.Pools.NestedMACVLAN = PoolSize{Min: 1, Max: 2, Batch: 2}
	// Updates of the VM's port that Neutron took (a 412, someone else
	// changed the port in between, is retried and not counted).
	var vmUpdates atomic.Int64
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/ports/"+vm) {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK {
			vmUpdates.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
	f.startController()
	f.createPod("first", node, "")
	f.waitReady("first")
	f.waitPoolReady(node, 2)
	// The first pod's own port and pair, and the pool's batch.
	if c, u := f.sim.Count("neutron.ports.create"), vmUpdates.Load(); c != 2 || u != 2 {
		t.Fatalf("port creates %d and updates of the VM's port %d, want 2 and 2", c, u)
	}
	allowed := func(id string) bool {
		p, _ := f.sim.Port(id)
		parent, _ := f.sim.Port(vm)
		return len(p.FixedIPs) > 0 && slices.ContainsFunc(parent.AllowedAddressPairs, func(a cloudsim.AddressPair) bool {
			return a.IPAddress == p.FixedIPs[0].IPAddress && strings.EqualFold(a.MACAddress, p.MACAddress)
		})
	}
	for id := range f.poolPorts() {
		if !allowed(id) {
			t.Fatalf("pool port %s is not an allowed address pair of the VM's port", id)
		}
	}

	before := f.calls.Load()
	f.createPod("second", node, "")
	taken := f.waitReady("second").Status.Interfaces[0].PortID
	if n := f.calls.Load() - before; n != 1 {
		t.Fatalf("the pooled pod's path made %d OpenStack requests, want 1", n)
	}
	var idle string
	for id := range f.poolPorts() {
		if id != taken {
			idle = id
		}
	}
	if _, ok := f.poolPorts()[taken]; !ok || idle == "" {
		t.Fatalf("second pod's port %s is not pooled, or no idle port is left (%v)", taken, sortedKeys(f.poolPorts()))
	}

	must(t, f.c.Delete(f.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}))
	f.eventually(20*time.Second, "the gone node's idle pool port released", func() (bool, string) {
		_, present := f.sim.Port(idle)
		return !present && !allowed(idle), fmt.Sprintf("present %v, allowed %v", present, allowed(idle))
	})
	if _, ok := f.sim.Port(taken); !ok || !allowed(taken) {
		t.Fatalf("the pod's pooled port %s was released with the node's pool", taken)
	}
}

// TestPoolDeclaredTakenByPod: pools.nestedVLANNetworks and
// pools.nestedMACVLANNetworks make each node's pool at start, before any
// pod, filled with one bulk create; a declared network that names no
// security groups gets podSecurityGroups, so the first pod's eth0 (same
// driver, subnet and default groups) takes a port of the declared pool
// with one Neutron call (its owner tag) and no second pool is made. Min
// 1 of 2: the take leaves the pool at its min, so no refill's calls mix
// with the pod's.
func TestPoolDeclaredTakenByPod(t *testing.T) {
	for _, d := range []v1alpha1.Driver{v1alpha1.DriverNestedVLAN, v1alpha1.DriverNestedMACVLAN} {
		t.Run(string(d), func(t *testing.T) {
			f := newFixture(t, 1)
			node := f.ns + "-node-0"
			f.opts.DefaultDriver = d
			size, nets := PoolSize{Min: 1, Max: 2, Batch: 2}, []PoolNetwork{{SubnetID: f.podSubnet}}
			if d == v1alpha1.DriverNestedVLAN {
				f.opts.Pools.NestedVLAN, f.opts.Pools.NestedVLANNetworks = size, nets
			} else {
				f.opts.Pools.NestedMACVLAN, f.opts.Pools.NestedMACVLANNetworks = size, nets
			}
			// The pod's path is counted without the parent lookups of the
			// other tests' nodes (the API server is shared; the pools are
			// declared on every node, and those are not in this cloud).
			server := f.servers[node].Server.ID
			var calls atomic.Int64
			f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if id := r.URL.Query().Get("device_id"); id == "" || id == server {
					calls.Add(1)
				}
				next.ServeHTTP(w, r)
			})
			f.startController()
			f.waitPoolReady(node, 2)
			if c := f.sim.Count("neutron.ports.create"); c != 1 {
				t.Fatalf("%d port creates before any pod, want 1 (the declared pool's batch)", c)
			}
			for id, p := range f.poolPorts() {
				if tagValue(p.Tags, tagPrefixDriver) != string(d) || len(p.FixedIPs) == 0 || p.FixedIPs[0].SubnetID != f.podSubnet ||
					!slices.Equal(p.SecurityGroups, []string{f.sg}) {
					t.Fatalf("pool port %s: tags %v, IPs %+v, groups %v; want driver %s, the pod subnet and the pod default group %s",
						id, p.Tags, p.FixedIPs, p.SecurityGroups, d, f.sg)
				}
			}

			before, counts := calls.Load(), f.sim.Counts()
			f.createPod("first", node, "")
			kp := f.waitReady("first")
			if n := calls.Load() - before; n != 1 {
				t.Fatalf("the first pod's path made %d OpenStack requests, want 1 (%v)", n, countsSince(counts, f.sim.Counts()))
			}
			id := kp.Status.Interfaces[0].PortID
			if p, pooled := f.poolPorts()[id]; !pooled || tagValue(p.Tags, tagPrefixPod) != string(kp.Spec.PodUID) {
				t.Fatalf("first pod's port %s: pooled %v, tags %v", id, pooled, p.Tags)
			}
			if got, s := f.pool(node); got.InUse != 1 {
				t.Fatalf("the declared pool after the take: %s, want 1 in use", s)
			}
		})
	}
}

// TestPoolListingsPerNodeAndTick: the pools look at Neutron only when they
// have something to learn, and then once per node and tick. Two declared
// nested-vlan pools of one node (two sets of security groups) whose ports
// Neutron keeps showing DOWN stay warming: woken 30 times over 3 s, they
// list the node's pool ports at most once a tick between them (4 in 3 s,
// more if the machine makes the 30 wakes take longer), not once per pool
// and round (60 before); once the ports show ACTIVE the next
// tick's listing makes both pools ready; then, with nothing warming, 10
// wakes list nothing.
func TestPoolListingsPerNodeAndTick(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	other := f.sim.SeedSecurityGroup("other").ID
	f.opts.Pools.NestedVLAN = PoolSize{Min: 2, Max: 2, Batch: 2}
	f.opts.Pools.NestedVLANNetworks = []PoolNetwork{{SubnetID: f.podSubnet}, {SubnetID: f.podSubnet, SecurityGroups: []string{other}}}
	var listings atomic.Int64
	var down atomic.Bool
	down.Store(true)
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/ports") ||
			!strings.Contains(r.URL.Query().Get("tags"), tagPrefixPool+node) {
			next.ServeHTTP(w, r)
			return
		}
		listings.Add(1)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		if down.Load() {
			b = bytes.ReplaceAll(b, []byte(`"ACTIVE"`), []byte(`"DOWN"`))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(b)
	})
	f.startController()
	counts := func() (warming, ready int, s string) {
		st := f.rec.Load().pools.byNode()[node]
		for _, p := range st {
			warming += p.Warming
			ready += p.Ready
		}
		return warming, ready, fmt.Sprintf("%+v", st)
	}
	f.eventually(20*time.Second, "two pools of 2 warming ports", func() (bool, string) {
		w, r, s := counts()
		return w == 4 && r == 0, s
	})
	// wakes returns the listings made while it woke the pools n times,
	// and how long that took (more than n × every on a loaded machine).
	wakes := func(n int, every time.Duration) (int64, time.Duration) {
		before, start := listings.Load(), time.Now()
		for range n {
			f.rec.Load().pools.wake()
			time.Sleep(every)
		}
		return listings.Load() - before, time.Since(start)
	}
	if n, took := wakes(30, 100*time.Millisecond); n > int64(took/poolTick)+1 {
		t.Fatalf("two warming pools of one node woken 30 times over %s listed its pool ports %d times, want at most one a tick (%d)", took, n, int64(took/poolTick)+1)
	}
	down.Store(false)
	f.eventually(20*time.Second, "both pools ready", func() (bool, string) {
		w, r, s := counts()
		return w == 0 && r == 4, s
	})
	if n, _ := wakes(10, 100*time.Millisecond); n != 0 {
		t.Fatalf("two ready pools with nothing warming woken 10 times listed their node's pool ports %d times, want none", n)
	}
}

// TestPoolOfANodeNotInTheCloudBacksOff: pools declared on every node reach
// a node that is not a VM of this cloud (its providerID names a server
// Neutron has no port of). Its lookups — one Neutron listing each, for
// the fill and for the KuryrNode — back off (2 s, 4 s, 8 s ...) instead of
// going every round: at most 4 in the 10 s after the controller starts,
// where one per round would be 10 or more; it is still looked up again
// (at least 2), and the cloud's node keeps its pool. Its pool's failed
// refills are PoolNotFilled Events on it. Once the node is deleted its
// pool goes, and with it the node's backoff entry.
func TestPoolOfANodeNotInTheCloudBacksOff(t *testing.T) {
	f := newFixture(t, 1)
	node, stranger := f.ns+"-node-0", f.ns+"-stranger"
	const strangerServer = "5d3c1c1e-7b1f-4f33-9d54-6f2f4a1b2c3d"
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: stranger}, Spec: corev1.NodeSpec{ProviderID: "openstack:///" + strangerServer}}
	must(t, f.c.Create(f.ctx, n))
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.250"}}
	must(t, f.c.Status().Update(f.ctx, n))
	f.opts.Pools.NestedVLAN, f.opts.Pools.NestedVLANNetworks = PoolSize{Min: 1, Max: 1, Batch: 1}, []PoolNetwork{{SubnetID: f.podSubnet}}
	var lookups atomic.Int64
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Query().Get("device_id") == strangerServer {
			lookups.Add(1)
		}
		next.ServeHTTP(w, r)
	})
	f.startController()
	start := time.Now()
	f.waitPoolReady(node, 1)
	time.Sleep(time.Until(start.Add(10 * time.Second)))
	if got := lookups.Load(); got > 4 || got < 2 {
		t.Fatalf("the node that is not in the cloud was looked up %d times in the 10 s after the start, want 2 to 4 (a backoff of 2 s, 4 s, 8 s; every round would be 10 or more)", got)
	}
	if _, s := f.pool(node); !strings.Contains(s, "Ready:1") {
		t.Fatalf("the cloud's node's pool: %s, want 1 ready", s)
	}
	if evs, err := f.nodeEvents(stranger); err != nil || !slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonPoolFill+":") }) {
		t.Fatalf("node %s not in the cloud has no %s Event (%v, %v)", stranger, reasonPoolFill, evs, err)
	}

	r := f.rec.Load()
	backingOff := func() bool {
		r.pools.resMu.Lock()
		defer r.pools.resMu.Unlock()
		_, ok := r.pools.unresolved[stranger]
		return ok
	}
	if !backingOff() {
		t.Fatalf("node %s has no backoff entry while it is not in the cloud", stranger)
	}
	must(t, f.c.Delete(f.ctx, n))
	f.eventually(10*time.Second, "the deleted node's pool and backoff entry gone", func() (bool, string) {
		_, pooled := r.pools.byNode()[stranger]
		entry := backingOff()
		return !pooled && !entry, fmt.Sprintf("pool %v, backoff entry %v", pooled, entry)
	})
}
