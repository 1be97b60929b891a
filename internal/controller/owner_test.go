package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestForgedPortIDIsRefused: a KuryrPod status (which a node's daemon may
// write) that names another pod's port, or a port nobody tagged, for an
// interface to (re)wire is refused: the pod's interfaces are rolled back
// with an Event and Ready=False naming the refusal, and neither port is
// touched in the cloud (not wired onto the trunk, not attached by Nova, not
// deleted, not even retagged). The status write alone wakes the
// controller: nothing else of the pod changes.
func TestForgedPortIDIsRefused(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	node := f.ns + "-node-0"
	srv := f.servers[node]
	f.startController()
	victim := f.waitReady(f.createPod("victim", node, "mgmt").Name)
	victimEth0 := findStatus(&victim.Status, "eth0")
	untagged, err := f.cloud.CreatePort(f.ctx, openstack.PortSpec{NetworkID: f.dpNet.NetworkID, SubnetID: f.dpNet.ID, Name: "someone-elses"})
	must(t, err)
	f.createPod("attacker", node, "mgmt,dataplane")
	f.waitReady("attacker")

	before := map[string]cloudsim.Port{}
	for _, id := range []string{victimEth0.PortID, untagged.ID, srv.ParentPort.ID} {
		p, ok := f.sim.Port(id)
		if !ok {
			t.Fatalf("port %s missing", id)
		}
		before[id] = p
	}
	subsBefore, ok := f.sim.Subports(srv.TrunkID)
	if !ok {
		t.Fatalf("trunk %s not found: its subports cannot be counted", srv.TrunkID)
	}

	// The forgery: eth0 names the victim's eth0 port, net2 (nested-dpdk)
	// the untagged port, both to be wired again.
	kp, err := f.kuryrPod("attacker")
	must(t, err)
	for i := range kp.Status.Interfaces {
		s := &kp.Status.Interfaces[i]
		switch s.IfName {
		case "eth0":
			s.PortID, s.State = victimEth0.PortID, v1alpha1.StatePending
		case "net2":
			s.PortID, s.State = untagged.ID, v1alpha1.StatePending
		}
	}
	// No change of the pod follows: one would wake the controller too,
	// but its reconcile may read a KuryrPod cache that has not seen the
	// forgery yet.
	must(t, f.c.Status().Update(f.ctx, kp))

	f.eventually(20*time.Second, "the attacker's interfaces failed", func() (bool, string) {
		kp, err := f.kuryrPod("attacker")
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonFailed && strings.Contains(c.Message, "refused"), fmt.Sprintf("%+v", kp.Status)
	})
	kp, err = f.kuryrPod("attacker")
	must(t, err)
	for ifName, want := range map[string]string{"eth0": "differ from this pod's: refused", "net2": "whose cluster, pod, interface differ"} {
		if s := findStatus(&kp.Status, ifName); s == nil || s.State != v1alpha1.StateFailed || !strings.Contains(s.Message, want) || s.PortID != "" {
			t.Errorf("attacker's %s: %+v, want Failed, no port, message naming %q", ifName, s, want)
		}
	}
	f.eventually(10*time.Second, "the Event", func() (bool, string) {
		evs := f.events("attacker")
		return slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonFailed) && strings.Contains(e, "refused") }), strings.Join(evs, "; ")
	})

	for id, was := range before {
		now, ok := f.sim.Port(id)
		if !ok || !reflect.DeepEqual(now, was) {
			t.Errorf("port %s changed:\nbefore %+v\nafter  %+v (present %v)", id, was, now, ok)
		}
	}
	subsAfter, ok := f.sim.Subports(srv.TrunkID)
	if !ok {
		t.Fatalf("trunk %s not found: its subports cannot be counted", srv.TrunkID)
	}
	for _, s := range subsAfter {
		if s.PortID == untagged.ID {
			t.Errorf("the untagged port became subport %+v", s)
		}
	}
	if !slices.ContainsFunc(subsAfter, func(s cloudsim.Subport) bool {
		return s.PortID == victimEth0.PortID && s.SegmentationID == victimEth0.VLANID
	}) {
		t.Errorf("the victim's subport is gone: before %+v, after %+v", subsBefore, subsAfter)
	}
	if kp, err := f.kuryrPod("victim"); err != nil || !meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady) ||
		!reflect.DeepEqual(kp.Status.Interfaces, victim.Status.Interfaces) {
		t.Errorf("the victim's KuryrPod changed: %v %+v", err, kp.Status)
	}
}

// TestOnlyOthersStatusWritesWakeThePod: the KuryrPod watch's filter
// (othersChanges), given each update as the API server returns it, lets
// through a status the controller did not write (the daemon's Plugged, a
// forged port ID) and a deletion request, and holds back the controller's
// own status writes (writeStatus) and a change of the labels alone.
func TestOnlyOthersStatusWritesWakeThePod(t *testing.T) {
	f := newFixture(t, 1)
	pod := f.createPod("p", f.ns+"-node-0", "")
	r := NewPodReconciler(f.c, f.cloud, nil, f.opts, nil)
	must(t, f.c.Create(f.ctx, newKuryrPod(pod)))
	filter := r.othersChanges()
	// wakes makes one write to the KuryrPod as read from the API server
	// and says whether the filter passes the update it made.
	wakes := func(write func(kp *v1alpha1.KuryrPod) error) bool {
		t.Helper()
		old, err := f.kuryrPod("p")
		must(t, err)
		must(t, write(old.DeepCopy()))
		cur, err := f.kuryrPod("p")
		must(t, err)
		if cur.ResourceVersion == old.ResourceVersion {
			t.Fatalf("the write changed nothing: %+v", cur.Status)
		}
		return filter.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: cur})
	}
	controller := func(state v1alpha1.InterfaceState, ready bool) func(*v1alpha1.KuryrPod) error {
		return func(kp *v1alpha1.KuryrPod) error {
			st := kp.Status.DeepCopy()
			setCondition(st, v1alpha1.ConditionSpecValid, true, reasonPlanned, "1 interfaces", kp.Generation)
			setCondition(st, v1alpha1.ConditionReady, ready, reasonActive, string(state), kp.Generation)
			if len(st.Interfaces) == 0 {
				st.Interfaces = []v1alpha1.InterfaceStatus{{IfName: "eth0", Driver: v1alpha1.DriverNestedVLAN, PortID: "port-1",
					IPs: []string{"10.1.0.3/16"}, MTU: 1450, VLANID: 101, DNS: &v1alpha1.DNS{}}}
			}
			st.Interfaces[0].State = state
			st.Summary = string(state)
			return r.writeStatus(f.ctx, kp, st)
		}
	}
	other := func(change func(*v1alpha1.InterfaceStatus)) func(*v1alpha1.KuryrPod) error {
		return func(kp *v1alpha1.KuryrPod) error {
			change(&kp.Status.Interfaces[0])
			return f.c.Status().Update(f.ctx, kp)
		}
	}
	for _, step := range []struct {
		what  string
		write func(*v1alpha1.KuryrPod) error
		want  bool
	}{
		{"the controller's Pending", controller(v1alpha1.StatePending, false), false},
		{"the controller's Active", controller(v1alpha1.StateActive, true), false},
		{"the daemon's Plugged", other(func(s *v1alpha1.InterfaceStatus) { s.State, s.PCIAddress = v1alpha1.StatePlugged, "0000:01:00.0" }), true},
		{"the controller's next write", controller(v1alpha1.StatePlugged, true), false},
		{"a forged port ID", other(func(s *v1alpha1.InterfaceStatus) { s.PortID, s.State = "port-2", v1alpha1.StatePending }), true},
		{"a label alone", func(kp *v1alpha1.KuryrPod) error {
			kp.Labels["x"] = "y"
			return f.c.Update(f.ctx, kp)
		}, false},
		{"a deletion request", func(kp *v1alpha1.KuryrPod) error { return f.c.Delete(f.ctx, kp) }, true},
	} {
		if got := wakes(step.write); got != step.want {
			t.Errorf("%s: the filter says %v, want %v", step.what, got, step.want)
		}
	}
}

// TestTwoClustersWithOneNameKeepTheirPorts: two clusters given the same
// clusterID in one project (two controllers, each on its own API server,
// one cloud) tell their ports apart by their kube-system UIDs: each one's
// garbage collector, run until it would release an orphan, leaves the
// other's pod's ports alone.
func TestTwoClustersWithOneNameKeepTheirPorts(t *testing.T) {
	f := newFixture(t, 1)
	other, err := testenv.Start(testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds", "../../deploy/third-party"}})
	must(t, err)
	t.Cleanup(func() { _ = other.Stop() })
	c2, err := client.New(other.Config, client.Options{Scheme: scheme})
	must(t, err)
	uid2, err := ReadClusterUID(f.ctx, c2)
	must(t, err)
	if uid2 == f.opts.ClusterUID {
		t.Fatalf("both API servers' kube-system have UID %s", uid2)
	}

	// Cluster 2: a node VM of its own in the same cloud, a pod on it.
	node2 := f.ns + "-other-node"
	srv2, err := f.sim.SeedServer(cloudsim.ServerSpec{Name: node2, SubnetID: f.opts.WorkerSubnetIDs[0], Trunk: true})
	must(t, err)
	must(t, c2.Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}))
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node2}, Spec: corev1.NodeSpec{ProviderID: "openstack:///" + srv2.Server.ID}}
	must(t, c2.Create(f.ctx, n))

	f.startController()
	_, err = f.runController(other.Config, false)
	must(t, err)
	f.createPod("one", f.ns+"-node-0", "")
	one := f.waitReady("one")
	two := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "two", Namespace: f.ns},
		Spec: corev1.PodSpec{NodeName: node2, Containers: []corev1.Container{{Name: "c", Image: "c:1"}}}}
	must(t, c2.Create(f.ctx, two))
	var kp2 v1alpha1.KuryrPod
	f.eventually(20*time.Second, "cluster 2's pod Ready", func() (bool, string) {
		if err := c2.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "two"}, &kp2); err != nil {
			return false, err.Error()
		}
		return meta.IsStatusConditionTrue(kp2.Status.Conditions, v1alpha1.ConditionReady), fmt.Sprintf("%+v", kp2.Status)
	})

	// Each cluster's collector, two rounds (an orphan goes on its second).
	for _, r := range []*PodReconciler{
		NewPodReconciler(f.c, f.cloud, nil, f.opts, nil),
		NewPodReconciler(c2, f.cloud, nil, withUID(f.opts, uid2), nil),
	} {
		gc := NewGarbageCollector(r)
		for round := 0; round < 2; round++ {
			if n, err := gc.Collect(f.ctx); err != nil || n != 0 {
				t.Fatalf("cluster %s: round %d released %d pods' ports (%v), want none", r.opts.ClusterUID, round, n, err)
			}
		}
	}
	for _, st := range append(slices.Clone(one.Status.Interfaces), kp2.Status.Interfaces...) {
		if _, ok := f.sim.Port(st.PortID); !ok {
			t.Errorf("port %s of interface %s is gone", st.PortID, st.IfName)
		}
	}
	// And each still releases its own: a port of cluster 2's name and UID
	// whose pod cluster 2 does not have goes after two rounds there.
	orphan, err := f.cloud.CreatePort(f.ctx, openstackPortSpec(f.mgmtNet.NetworkID, f.mgmtNet.ID,
		clusterIdentity{name: f.clusterID, uid: uid2}.tags(), "0rphan-of-cluster-2"))
	must(t, err)
	gc2 := NewGarbageCollector(NewPodReconciler(c2, f.cloud, nil, withUID(f.opts, uid2), nil))
	for round := 0; round < 2; round++ {
		if _, err := gc2.Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.sim.Port(orphan.ID); ok {
		t.Errorf("cluster 2's orphan %s survived two rounds of its collector", orphan.ID)
	}
}

func withUID(o Options, uid string) Options {
	o.ClusterUID = uid
	return o
}
