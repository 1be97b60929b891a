package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestBatcherMergesWhileInFlight: requests for one key that come while its
// call is in flight go together in the next call, other keys are not held
// back, each request gets its own answer, and a caller that gives up does
// not cancel the call the others wait for. (A fake call: the controller
// tests below check the same against the API server and the cloud.)
func TestBatcherMergesWhileInFlight(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var calls [][]int
	b := newBatcher(1, func(ctx context.Context, key string, ins []int) ([]int, []error) {
		mu.Lock()
		calls = append(calls, slices.Clone(ins))
		first := len(calls) == 1
		mu.Unlock()
		if first && key == "a" {
			<-release
		}
		if ctx.Err() != nil {
			t.Errorf("call for %v cancelled while its callers wait", ins)
		}
		outs, errs := make([]int, len(ins)), make([]error, len(ins))
		for i, in := range ins {
			outs[i] = in * 10
			if in == 13 {
				errs[i] = errors.New("thirteen refused")
			}
		}
		return outs, errs
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]int, 20)
	gotErr := make([]error, 20)
	wg.Go(func() { got[0], gotErr[0] = b.do(ctx, "a", 0) })
	if err := waitFor(context.Background(), 5*time.Second, "the first call", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 1, fmt.Sprintf("%d calls", len(calls))
	}); err != nil {
		t.Fatal(err)
	}
	// While "a"'s first call is held: ten more for "a", one of which
	// gives up, and one for "b", which must not wait.
	quit, cancel := context.WithCancel(ctx)
	for i := 10; i < 20; i++ {
		c := ctx
		if i == 19 {
			c = quit
		}
		wg.Go(func() { got[i], gotErr[i] = b.do(c, "a", i) })
	}
	if v, err := b.do(ctx, "b", 7); v != 70 || err != nil {
		t.Fatalf("key b = %d, %v while key a's call is in flight; want 70, nil at once", v, err)
	}
	time.Sleep(50 * time.Millisecond) // the ten are queued behind the held call
	cancel()
	close(release)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var forA [][]int
	for _, c := range calls {
		if !slices.Contains(c, 7) {
			forA = append(forA, c)
		}
	}
	if len(forA) != 2 || len(forA[1]) < 9 {
		t.Fatalf("calls for key a: %v; want the first alone, then the nine that waited in one call", forA)
	}
	for i := 10; i < 19; i++ {
		want := error(nil)
		if i == 13 {
			want = errors.New("thirteen refused")
		}
		if got[i] != i*10 || fmt.Sprint(gotErr[i]) != fmt.Sprint(want) {
			t.Errorf("request %d = %d, %v; want %d, %v", i, got[i], gotErr[i], i*10, want)
		}
	}
	if !errors.Is(gotErr[19], context.Canceled) {
		t.Errorf("the caller that gave up got %v, want context.Canceled", gotErr[19])
	}
}

// TestBatcherMakesParallelCallsPerKey: with two calls per key allowed, a
// request that comes while the key's first call is in flight has a call
// of its own at once; requests that come while both are in flight wait and
// go together in one call when either returns; each gets its own answer.
func TestBatcherMakesParallelCallsPerKey(t *testing.T) {
	holds := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var mu sync.Mutex
	var calls [][]int
	b := newBatcher(2, func(ctx context.Context, key string, ins []int) ([]int, []error) {
		mu.Lock()
		calls = append(calls, slices.Clone(ins))
		n := len(calls)
		mu.Unlock()
		if n <= len(holds) {
			<-holds[n-1]
		}
		outs := make([]int, len(ins))
		for i, in := range ins {
			outs[i] = in * 10
		}
		return outs, make([]error, len(ins))
	})
	callsNow := func() [][]int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}
	waitCalls := func(n int) {
		t.Helper()
		if err := waitFor(context.Background(), 5*time.Second, fmt.Sprintf("%d calls", n), func() (bool, string) {
			c := callsNow()
			return len(c) == n, fmt.Sprint(c)
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]int, 10)
	wg.Go(func() { got[0], _ = b.do(ctx, "a", 0) })
	waitCalls(1)
	wg.Go(func() { got[1], _ = b.do(ctx, "a", 1) })
	waitCalls(2) // the second call, while the first is held
	for i := 2; i < 10; i++ {
		wg.Go(func() { got[i], _ = b.do(ctx, "a", i) })
	}
	time.Sleep(50 * time.Millisecond)
	if c := callsNow(); len(c) != 2 {
		t.Fatalf("calls while two are in flight: %v; want no third call yet", c)
	}
	close(holds[0])
	waitCalls(3)
	close(holds[1])
	wg.Wait()
	c := callsNow()
	if len(c) != 3 || !slices.Equal(c[0], []int{0}) || !slices.Equal(c[1], []int{1}) || len(c[2]) != 8 {
		t.Fatalf("calls = %v; want [0], [1], then the eight that waited in one call", c)
	}
	for i, v := range got {
		if v != i*10 {
			t.Errorf("request %d = %d, want %d", i, v, i*10)
		}
	}
}

// TestBatchingTenPodsShareCalls: ten pods created at once on one node,
// pools off, ten workers, with a cloud that takes a second per create and
// per add_subports (so that pods whose reconciles start apart on a loaded
// machine still meet while a call is in flight): far fewer than ten port
// creates and add_subports are made (at most 5 and 4), every pod is Ready with its own port
// and a VLAN ID of its own on the trunk.
func TestBatchingTenPodsShareCalls(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Workers = 10
	f.sim.SetLatency("neutron.ports.create", cloudsim.Latency{Fixed: time.Second})
	f.sim.SetLatency("neutron.trunks.add_subports", cloudsim.Latency{Fixed: time.Second})
	f.startController()

	const n = 10
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f.createPod(fmt.Sprint("p", i), node, "") })
	}
	wg.Wait()
	vlans := map[int]string{}
	for i := range n {
		kp := f.waitReady(fmt.Sprint("p", i))
		st := kp.Status.Interfaces[0]
		if other, dup := vlans[st.VLANID]; dup || st.VLANID == 0 {
			t.Errorf("pod p%d has VLAN ID %d (also %s's)", i, st.VLANID, other)
		}
		vlans[st.VLANID] = kp.Name
		if got := f.subportVLAN(node, st.PortID); got != st.VLANID {
			t.Errorf("pod p%d: port %s is VLAN %d on the trunk, status says %d", i, st.PortID, got, st.VLANID)
		}
	}
	creates, adds := f.sim.Count("neutron.ports.create"), f.sim.Count("neutron.trunks.add_subports")
	t.Logf("%d pods: %d port creates, %d add_subports", n, creates, adds)
	// Creates: two may be in flight at once (createCallsPerNetwork), the
	// rest wait and go together; add_subports go one at a time.
	if creates > 5 || adds > 4 {
		t.Errorf("%d pods made %d port creates and %d add_subports; want at most 5 and 4 (pods share calls)", n, creates, adds)
	}
	if ports := len(f.ourPorts()); ports != n {
		t.Errorf("%d ports in the cloud for %d pods", ports, n)
	}
}

// TestBatchingRefusedCreateIsSplit: five pods at once, one of them asking
// for an address that is taken. Neutron refuses a bulk create whole, so the
// batch is tried again port by port: the four others are Ready, the fifth
// reports the cloud's reason, and no port is made twice.
func TestBatchingRefusedCreateIsSplit(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.standardNADs()
	_, err := f.cloud.CreatePort(f.ctx, openstack.PortSpec{NetworkID: f.mgmtNet.NetworkID, IPs: []openstack.FixedIP{{SubnetID: f.mgmtNet.ID, IPAddress: "10.2.0.50"}}, Name: "squatter"})
	must(t, err)
	f.sim.SetLatency("neutron.ports.create", cloudsim.Latency{Fixed: 300 * time.Millisecond})
	f.startController()

	var wg sync.WaitGroup
	for i := range 5 {
		nets := "mgmt"
		if i == 2 {
			nets = `[{"name":"mgmt","ips":["10.2.0.50"]}]`
		}
		wg.Go(func() { f.createPod(fmt.Sprint("p", i), node, nets) })
	}
	wg.Wait()
	for _, i := range []int{0, 1, 3, 4} {
		f.waitReady(fmt.Sprint("p", i))
	}
	f.eventually(20*time.Second, "p2's net1 reporting the taken address", func() (bool, string) {
		kp, err := f.kuryrPod("p2")
		if err != nil {
			return false, err.Error()
		}
		st := findStatus(&kp.Status, "net1")
		return st != nil && strings.Contains(st.Message, "IpAddressAlreadyAllocated") &&
			!meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady), fmt.Sprintf("%+v", kp.Status)
	})
	byIf := map[string]int{}
	for _, p := range f.ourPorts() {
		byIf[tagValue(p.Tags, tagPrefixPod)+"/"+tagValue(p.Tags, tagPrefixIfName)]++
	}
	for k, c := range byIf {
		if c != 1 {
			t.Errorf("interface %s has %d ports", k, c)
		}
	}
	if len(byIf) != 9 {
		t.Errorf("%d interfaces have ports, want 9 (eth0 of five pods, net1 of four): %v", len(byIf), byIf)
	}
}

// TestBatchingSubportsPerCallerErrors: callers waiting for the same trunk
// share one add_subports; when Neutron refuses that batch because of one
// caller's port (a subport of another trunk already), only that caller
// gets the error and the others their VLAN IDs; a VLAN ID taken behind the
// controller's back (409) is chosen again for the whole batch.
func TestBatchingSubportsPerCallerErrors(t *testing.T) {
	f := newFixture(t, 2)
	a, b := f.servers[f.ns+"-node-0"], f.servers[f.ns+"-node-1"]
	ns := newNodes(retryingCloud{f.cloud}, nil)
	mk := func(n int) []string {
		var specs []openstack.PortSpec
		for range n {
			specs = append(specs, openstack.PortSpec{NetworkID: f.mgmtNet.NetworkID, SubnetID: f.mgmtNet.ID})
		}
		ps, err := f.cloud.CreatePorts(f.ctx, specs)
		must(t, err)
		ids := make([]string, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		return ids
	}
	ports := mk(6)
	// The cache learns trunk a (VLAN 1 free), then VLAN 1 is taken behind
	// its back, and ports[5] becomes a subport of trunk b.
	if _, err := ns.addSubports(f.ctx, a.TrunkID, ports[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cloud.AddSubports(f.ctx, a.TrunkID, []openstack.Subport{{PortID: ports[1], SegmentationID: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cloud.AddSubports(f.ctx, b.TrunkID, []openstack.Subport{{PortID: ports[5], SegmentationID: 9}}); err != nil {
		t.Fatal(err)
	}
	before := f.sim.Count("neutron.trunks.add_subports")
	var wg sync.WaitGroup
	got := make([]map[string]int, 4)
	errs := make([]error, 4)
	for i, ids := range [][]string{{ports[2]}, {ports[3]}, {ports[4]}, {ports[5]}} {
		wg.Go(func() {
			got[i], errs[i] = ns.addSubports(f.ctx, a.TrunkID, ids)
		})
	}
	wg.Wait()
	seen := map[int]bool{1: true, 2: true}
	for i := range 3 {
		id := ports[2+i]
		vid := got[i][id]
		if errs[i] != nil || vid == 0 || seen[vid] || f.subportVLAN(f.ns+"-node-0", id) != vid {
			t.Errorf("caller %d: VLAN %d (trunk says %d), %v; want a free VLAN ID of its own", i, vid, f.subportVLAN(f.ns+"-node-0", id), errs[i])
		}
		seen[vid] = true
	}
	if !errors.Is(errs[3], openstack.ErrConflict) {
		t.Errorf("the caller whose port is on another trunk got %v, want a conflict", errs[3])
	}
	calls := f.sim.Count("neutron.trunks.add_subports") - before
	t.Logf("4 callers: %d add_subports", calls)
	// The batch refused for VLAN 2, chosen again and refused for the other
	// trunk's port, once more after a reload; then one call per good caller
	// and two (with a reload) for the refused one.
	if calls > 3+3+2 {
		t.Errorf("%d add_subports for 4 callers", calls)
	}
}
