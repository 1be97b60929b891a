package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolKilledMidFillRebuilds: the controller is killed while a pool's
// batch is made but not yet on the trunk (the add_subports request is held
// until the client goes) and the first pod's own port exists (so the
// restarted controller serves that pod with it, not from the pool); the
// restarted controller rebuilds the pool from Neutron's tags, wires the
// batch, makes no new port, and hands each port out once.
func TestPoolKilledMidFillRebuilds(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 3, Max: 3, Batch: 3}
	var holding atomic.Bool // batches of subports wait for the client to go
	holding.Store(true)
	inFill := make(chan struct{}, 1)
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if strings.HasSuffix(r.URL.Path, "/add_subports") && subportsIn(body(r)) > 1 {
			if holding.Load() {
				select {
				case inFill <- struct{}{}:
				default:
				}
				<-r.Context().Done()
				return
			}
		}
		next.ServeHTTP(w, r)
	})
	stop := f.startController()
	first := f.createPod("first", node, "")
	select {
	case <-inFill:
	case <-time.After(20 * time.Second):
		t.Fatal("the pool's add_subports never came")
	}
	// The pod's miss and the pool's fill run side by side: the kill waits
	// for the pod's own port too. Killed before it exists, the restarted
	// controller would serve the pod from the rebuilt pool (the flake this
	// wait removed).
	podPort := ""
	f.eventually(20*time.Second, "the first pod's own port in the cloud", func() (bool, string) {
		for _, p := range f.ourPorts() {
			if tagValue(p.Tags, tagPrefixPod) == string(first.UID) {
				podPort = p.ID
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d ports of ours, none the pod's", len(f.ourPorts()))
	})
	made := f.poolPorts()
	stop()
	// The kill landed mid-fill: the batch made, none of it on the trunk,
	// and the pod's port made.
	if len(made) != 3 {
		t.Fatalf("killed with %d pool ports made, want the batch of 3", len(made))
	}
	for id := range made {
		if f.subportVLAN(node, id) != 0 {
			t.Fatalf("pool port %s is a subport already: the kill did not land mid-fill", id)
		}
	}
	if _, ok := f.sim.Port(podPort); !ok {
		t.Fatalf("the first pod's port %s is gone after the kill", podPort)
	}
	t.Logf("killed with the batch %v held before the trunk and the pod's port %s made", sortedKeys(made), podPort)

	holding.Store(false)
	// No refill after the restart: the pods below must get the rebuilt ports.
	f.opts.Pools.NestedVLAN.Min = 0
	creates := f.sim.Count("neutron.ports.create")
	f.startController()
	if got := f.waitReady("first").Status.Interfaces[0].PortID; got != podPort {
		t.Fatalf("after the restart the first pod has port %s, want its own %s", got, podPort)
	}
	f.waitPoolReady(node, 3)
	if got := f.readyPortIDs(node); !slices.Equal(got, sortedKeys(made)) {
		t.Fatalf("rebuilt pool holds %v, want the batch made before the kill %v", got, sortedKeys(made))
	}
	for id := range made {
		if f.subportVLAN(node, id) == 0 {
			t.Fatalf("rebuilt pool port %s was not put on the trunk", id)
		}
	}
	if n := f.sim.Count("neutron.ports.create") - creates; n != 0 {
		t.Fatalf("%d port creates after the restart, want none", n)
	}
	// Each pooled port goes to one pod.
	taken := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("p%d", i)
		f.createPod(name, node, "")
		kp := f.waitReady(name)
		id := kp.Status.Interfaces[0].PortID
		if _, ok := made[id]; !ok {
			t.Fatalf("pod %s got port %s, not one of the rebuilt pool", name, id)
		}
		if other, dup := taken[id]; dup {
			t.Fatalf("port %s handed to %s and %s", id, other, name)
		}
		taken[id] = name
	}
}

// TestPoolKilledMidTake: the controller is killed after Neutron recorded a
// pod's tag on a pooled port and before the controller heard back (so
// before any status write); the restarted controller gives the pod that
// same port, and the pool never hands it to another pod.
func TestPoolKilledMidTake(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 2, Max: 2, Batch: 2}
	var holding atomic.Bool
	tagged := make(chan string, 1)
	f.interpose(5*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/tags") && holding.Load() && strings.Contains(body(r), tagPrefixPod) {
			// Neutron does the write; its answer never reaches the controller.
			next.ServeHTTP(httptest.NewRecorder(), r)
			select {
			case tagged <- strings.Split(strings.TrimPrefix(r.URL.Path, "/network/v2.0/ports/"), "/")[0]:
			default:
			}
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
	stop := f.startController()
	f.createPod("first", node, "")
	f.waitReady("first")
	f.waitPoolReady(node, 2)

	holding.Store(true)
	taker := f.createPod("taker", node, "")
	var portID string
	select {
	case portID = <-tagged:
	case <-time.After(20 * time.Second):
		t.Fatal("the pooled port's tag write never came")
	}
	// The take left the pool one below min: let its refill be made first.
	f.eventually(20*time.Second, "the refill after the take", func() (bool, string) {
		return len(f.poolPorts()) == 3, fmt.Sprint(len(f.poolPorts()), " pool ports")
	})
	stop()
	holding.Store(false)
	if p, _ := f.sim.Port(portID); tagValue(p.Tags, tagPrefixPod) != string(taker.UID) {
		t.Fatalf("port %s tags %v: the kill did not land after the tag write", portID, p.Tags)
	}
	if kp, err := f.kuryrPod("taker"); err == nil && len(kp.Status.Interfaces) > 0 && kp.Status.Interfaces[0].PortID != "" {
		t.Fatalf("the status was written before the kill (%+v): the kill did not land mid-take", kp.Status)
	}

	f.opts.Pools.NestedVLAN.Min = 0 // no refill: the other pod must get the other pooled port
	f.startController()
	kp := f.waitReady("taker")
	if got := kp.Status.Interfaces[0].PortID; got != portID {
		t.Fatalf("after the restart the pod has port %s, want the one tagged for it, %s", got, portID)
	}
	// Before the kill the take had asked for a refill (one below min):
	// the pool holds that port too.
	pool := f.poolPorts()
	if len(pool) != 3 {
		t.Fatalf("%d pool ports, want 3 (2 made, 1 refilled after the take)", len(pool))
	}
	f.eventually(20*time.Second, "the rebuilt pool with the taker's port in use and the others ready", func() (bool, string) {
		st, s := f.pool(node)
		return st.InUse == 1 && slices.Equal(f.readyPortIDs(node), sortedKeys(without(pool, portID))), s + fmt.Sprint(f.readyPortIDs(node))
	})
	f.createPod("other", node, "")
	other := f.waitReady("other").Status.Interfaces[0].PortID
	if other == portID {
		t.Fatalf("port %s handed out twice", portID)
	}
	if _, ok := pool[other]; !ok {
		t.Fatalf("other pod got %s, not the remaining pooled port", other)
	}
	if n := len(f.poolPorts()); n != 3 {
		t.Fatalf("%d pool ports, want the 3 made before the kill", n)
	}
}

// TestPoolSlowCloud: every port create answers after the client's timeout
// (Neutron made the ports, the controller never hears it) and writes are
// bounded to 2 at once: the cloud makes exactly one port per pod interface
// and per pool place (none made twice, even if deleted again), none is
// leaked, and writes reach the bound of 2 in flight but never pass it.
func TestPoolSlowCloud(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 3, Max: 3, Batch: 3}
	f.opts.MaxCloudWrites = 2
	const timeout = 700 * time.Millisecond
	var slowCreates, portsMade atomic.Int64
	f.interpose(timeout, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v2.0/ports") {
			var req struct {
				Port  json.RawMessage   `json:"port"`
				Ports []json.RawMessage `json:"ports"`
			}
			_ = json.Unmarshal([]byte(body(r)), &req)
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			if rec.Code == http.StatusCreated {
				portsMade.Add(int64(len(req.Ports)))
				if req.Port != nil {
					portsMade.Add(1)
				}
			}
			slowCreates.Add(1)
			<-r.Context().Done() // answer only after the client gave up
			return
		}
		next.ServeHTTP(w, r)
	})
	f.startController()
	const pods = 4
	for i := range pods {
		f.createPod(fmt.Sprintf("p%d", i), node, "")
	}
	for i := range pods {
		f.waitReady(fmt.Sprintf("p%d", i))
	}
	f.waitPoolReady(node, 3)
	if slowCreates.Load() == 0 {
		t.Fatal("no create was slower than the client: the test proves nothing")
	}
	// Leak check, with the slow cloud still on: every port of ours is a
	// live pod's interface (one each) or a pool port the pool knows.
	owners := map[string]string{}
	ready := f.readyPortIDs(node)
	for _, p := range f.ourPorts() {
		owner := tagValue(p.Tags, tagPrefixPod) + "/" + tagValue(p.Tags, tagPrefixIfName)
		switch {
		case tagValue(p.Tags, tagPrefixPod) != "":
			if prev, dup := owners[owner]; dup {
				t.Errorf("interface %s has two ports, %s and %s", owner, prev, p.ID)
			}
			owners[owner] = p.ID
		case !slices.Contains(ready, p.ID):
			t.Errorf("port %s (%v) belongs to no pod and is not in the pool %v: leaked", p.ID, p.Tags, ready)
		}
	}
	if len(owners) != pods {
		t.Errorf("%d pod interfaces have ports, want %d", len(owners), pods)
	}
	// Each interface and each pool place got one port, made once: a port
	// made twice and its extra deleted again would show here.
	if made := portsMade.Load(); made != pods+3 {
		t.Errorf("the cloud made %d ports, want %d (one per pod and 3 for the pool)", made, pods+3)
	}
	if d := f.sim.Count("neutron.ports.delete"); d != 0 {
		t.Errorf("%d ports deleted, want none (no pod went, the pool is at its max)", d)
	}
	if m := f.maxWrites.Load(); m != 2 {
		t.Errorf("%d writes in flight at most, want the bound, 2, reached and never passed", m)
	}
	t.Logf("creates answered too late: %d; ports made: %d; most writes in flight: %d", slowCreates.Load(), portsMade.Load(), f.maxWrites.Load())
}

// TestPoolLateCreateAdopted: the pool's first bulk create is made by
// Neutron only after the client gave up (3 s after its timeout, later than
// the listing right after the failure and than a retry's whole refill):
// the pool makes no second batch meanwhile, adopts the late ports when
// they appear, and ends with exactly one batch in the cloud, every port
// of it known and ready.
func TestPoolLateCreateAdopted(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 3, Max: 6, Batch: 3}
	late := f.lateCreate(3*time.Second, func(b string) bool { return strings.Contains(b, tagPrefixPool) })
	f.startController()
	f.createPod("first", node, "")
	f.waitReady("first")
	f.eventually(20*time.Second, "the late batch made", func() (bool, string) { return late.Load() == 2, fmt.Sprint(late.Load()) })
	f.eventually(20*time.Second, "every pool port in the cloud known and ready", func() (bool, string) {
		var inCloud []string
		for id := range f.poolPorts() {
			inCloud = append(inCloud, id)
		}
		slices.Sort(inCloud)
		ready := f.readyPortIDs(node)
		return len(inCloud) == 3 && slices.Equal(inCloud, ready), fmt.Sprintf("in the cloud %v, ready %v", inCloud, ready)
	})
	if c := f.sim.Count("neutron.ports.create"); c != 2 {
		t.Errorf("%d port creates, want 2 (the first pod's and the late batch)", c)
	}
}

// TestPodLateCreateNotRepeated: a pod's port create (no pool) is made by
// Neutron only a second after the client gave up on it, later than the
// reconciles right after the failure look for it by tag: the controller
// makes no second port meanwhile, finds the late one and wires the pod
// with it; one create in all, and no port deleted.
func TestPodLateCreateNotRepeated(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	late := f.lateCreate(time.Second, func(string) bool { return true })
	f.startController()
	f.createPod("late", node, "")
	kp := f.waitReady("late")
	if late.Load() != 2 {
		t.Fatalf("the pod was Ready before the late create was made (%d): the test proves nothing", late.Load())
	}
	ports := f.ourPorts()
	if len(ports) != 1 || len(kp.Status.Interfaces) != 1 || kp.Status.Interfaces[0].PortID != ports[0].ID {
		t.Errorf("want the late port as the pod's one port; in the cloud: %+v, status: %+v", ports, kp.Status.Interfaces)
	}
	if c := f.sim.Count("neutron.ports.create"); c != 1 {
		t.Errorf("%d port creates, want 1 (the late one)", c)
	}
	if d := f.sim.Count("neutron.ports.delete"); d != 0 {
		t.Errorf("%d ports deleted, want none", d)
	}
}

// TestPoolRebuiltTakeIsOneCall: after a restart the pools are rebuilt from
// Neutron's tags and need no refill; the first pod to take a rebuilt port
// still costs one OpenStack request on its path (the owner's tag write),
// its subnet and network read with the rebuild, not by its take.
func TestPoolRebuiltTakeIsOneCall(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.opts.Pools.NestedVLAN, f.opts.Pools.NestedVLANNetworks = PoolSize{Min: 2, Max: 2, Batch: 2}, []PoolNetwork{{SubnetID: f.podSubnet}}
	stop := f.startController()
	f.waitPoolReady(node, 2)
	stop()
	// No refill after the restart: its calls would count on the pod's
	// path below.
	f.opts.Pools.NestedVLAN.Min = 0
	f.startController()
	f.waitPoolReady(node, 2)
	// The rebuilt pool's rounds (its wiring checked, its listings) end
	// before the count starts: a second with no request at all.
	last, since := f.calls.Load(), time.Now()
	f.eventually(20*time.Second, "a second without OpenStack requests", func() (bool, string) {
		if n := f.calls.Load(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > time.Second, fmt.Sprint(f.sim.Counts())
	})
	before, counts := f.calls.Load(), f.sim.Counts()
	f.createPod("after", node, "")
	id := f.waitReady("after").Status.Interfaces[0].PortID
	if n := f.calls.Load() - before; n != 1 {
		t.Errorf("the first take after the restart made %d OpenStack requests, want 1 (%v)", n, countsSince(counts, f.sim.Counts()))
	}
	if _, pooled := f.poolPorts()[id]; !pooled {
		t.Errorf("the pod got port %s, not a rebuilt pool's", id)
	}
}

// lateCreate makes the first port create (single or bulk) whose body
// match accepts reach the simulated cloud only delay after the client
// (whose requests time out after 700 ms) gave up on it: Neutron makes it
// late. The value it returns is 1 while that create is held, 2 once it
// is made.
func (f *fixture) lateCreate(delay time.Duration, match func(body string) bool) *atomic.Int64 {
	var late atomic.Int64
	f.interpose(700*time.Millisecond, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		// Reading the body is also what lets the server notice the
		// client's going (and cancel the request's context).
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v2.0/ports") && match(body(r)) && late.CompareAndSwap(0, 1) {
			<-r.Context().Done()
			time.Sleep(delay)
			next.ServeHTTP(httptest.NewRecorder(), r.Clone(context.Background()))
			late.Store(2)
			return
		}
		next.ServeHTTP(w, r)
	})
	return &late
}
