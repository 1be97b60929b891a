package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestChaosFaultsAndRestarts: with 30 % of cloud requests failing (some
// after doing the work, so the answer is lost) and the controller stopped
// and restarted three times while 50 pods come and go, every pod ends
// Ready (the faults are all transient: none may fail a pod), and, counted
// while the faults are still on and with no garbage collector running
// (what is left is what the pods' own paths left): while the pods live,
// the cloud holds exactly one port per interface, each mgmt port a subport
// of its node's trunk and each dataplane port attached to its node's
// server; once they are deleted, no port, subport or attachment of ours.
func TestChaosFaultsAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: chaos run is not short (-short given)")
	}
	f := newFixture(t, 3)
	f.opts.Primary = false
	f.noGC = true
	f.standardNADs()
	f.sim.SetFault("neutron.*", cloudsim.Fault{Rate: 0.3, Status: 503})
	f.sim.SetFault("nova.*", cloudsim.Fault{Rate: 0.3, Status: 500})
	// Lost answers: the cloud did the work, the controller cannot know.
	f.sim.SetFault("neutron.ports.create", cloudsim.Fault{Rate: 0.3, Status: 500, After: true})
	f.sim.SetFault("neutron.trunks.add_subports", cloudsim.Fault{Rate: 0.3, Status: 502, After: true})
	f.sim.SetFault("nova.interfaces.attach", cloudsim.Fault{Rate: 0.3, Status: 504, After: true})

	const pods = 50
	name := func(i int) string { return fmt.Sprintf("p%02d", i) }
	stop := f.startController()
	restarts := 0
	restart := func() {
		stop()
		restarts++
		stop = f.startController()
	}
	for i := 0; i < pods; i++ {
		f.createPod(name(i), fmt.Sprintf("%s-node-%d", f.ns, i%3), "mgmt,dataplane")
		if i == 15 || i == 35 {
			time.Sleep(300 * time.Millisecond) // let it get busy, then kill it mid-work
			restart()
		}
	}
	// Every pod's expected outcome is Ready: a transient fault never fails
	// a pod. A pod that failed is reported at once, with its status.
	f.eventually(3*time.Minute, "every pod Ready", func() (bool, string) {
		var waiting []string
		for i := 0; i < pods; i++ {
			kp, err := f.kuryrPod(name(i))
			if err != nil {
				return false, fmt.Sprintf("%s: %v", name(i), err)
			}
			c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
			switch {
			case c != nil && c.Status == metav1.ConditionTrue:
			case c != nil && c.Reason == reasonFailed:
				t.Fatalf("pod %s failed under transient faults: %+v", name(i), kp.Status)
			default:
				waiting = append(waiting, name(i))
			}
		}
		return len(waiting) == 0, fmt.Sprintf("not Ready yet: %v", waiting)
	})
	faults := int64(0)
	for _, op := range f.sim.Operations() {
		faults += f.sim.FaultCount(op)
	}
	t.Logf("all %d pods Ready with 30%% faults and %d restarts; cloud requests %d, faults injected %d", pods, restarts, f.calls.Load(), faults)
	if faults == 0 {
		t.Fatal("no fault was injected: the test proves nothing")
	}

	// Counted with the faults still on: the cloud holds the pods'
	// interfaces and nothing else.
	want := map[string]string{} // port ID → pod/ifname
	for i := 0; i < pods; i++ {
		kp, err := f.kuryrPod(name(i))
		must(t, err)
		if len(kp.Status.Interfaces) != 2 {
			t.Fatalf("pod %s has %d interfaces, want mgmt and dataplane: %+v", name(i), len(kp.Status.Interfaces), kp.Status)
		}
		for _, s := range kp.Status.Interfaces {
			if prev, dup := want[s.PortID]; dup {
				t.Fatalf("port %s is %s and %s/%s", s.PortID, prev, name(i), s.IfName)
			}
			want[s.PortID] = name(i) + "/" + s.IfName
		}
	}
	for _, p := range f.ourPorts() {
		if _, ok := want[p.ID]; !ok {
			t.Errorf("port %s (tags %v) is no live interface's: leaked under faults", p.ID, p.Tags)
		}
		delete(want, p.ID)
	}
	for id, owner := range want {
		t.Errorf("interface %s names port %s, which the cloud does not hold", owner, id)
	}
	subports, attached := 0, 0
	for node, srv := range f.servers {
		subs, ok := f.sim.Subports(srv.TrunkID)
		if !ok {
			t.Fatalf("trunk %s of %s not found: its subports cannot be counted", srv.TrunkID, node)
		}
		subports += len(subs)
		for _, p := range f.sim.Ports() {
			if p.DeviceID == srv.Server.ID && p.ID != srv.ParentPort.ID {
				attached++
			}
		}
	}
	if subports != pods || attached != pods {
		t.Errorf("%d subports and %d attachments on the nodes, want one of each per pod (%d)", subports, attached, pods)
	}

	// Delete them all, killing the controller once more half-way.
	for i := 0; i < pods; i++ {
		f.deletePod(name(i))
		if i == pods/2 {
			restart()
		}
	}
	f.eventually(3*time.Minute, "every pod gone", func() (bool, string) {
		var list corev1.PodList
		if err := f.c.List(f.ctx, &list, client.InNamespace(f.ns)); err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0, fmt.Sprintf("%d pods left", len(list.Items))
	})
	if restarts < 3 {
		t.Fatalf("only %d restarts", restarts)
	}
	// Still with the faults on and no garbage collector: the pods' own
	// releases left nothing.
	if left := f.leftovers(); left != "" {
		t.Fatalf("with the faults still on, the released pods left: %s", left)
	}
}

// TestPodGoneWhileControllerDown: a pod removed behind the controller's back
// (finalizer stripped, pod deleted) and recreated under the same name with a
// new UID: the old pod's ports are released and the new pod is served.
func TestPodGoneWhileControllerDown(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	node := f.ns + "-node-0"
	stop := f.startController()
	old := f.createPod("reborn", node, "dataplane")
	f.waitReady("reborn")
	oldPorts := len(f.ourPorts())
	stop()

	// An operator force-removes the pod while the controller is down.
	var p corev1.Pod
	must(t, f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "reborn"}, &p))
	p.Finalizers = nil
	must(t, f.c.Update(f.ctx, &p))
	f.deletePod("reborn")
	f.eventually(10*time.Second, "old pod gone", func() (bool, string) {
		err := f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "reborn"}, &corev1.Pod{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	reborn := f.createPod("reborn", node, "dataplane")
	if reborn.UID == old.UID {
		t.Fatal("recreated pod has the old UID")
	}

	f.startController()
	f.eventually(20*time.Second, "new pod's KuryrPod Ready", func() (bool, string) {
		kp, err := f.kuryrPod("reborn")
		if err != nil {
			return false, err.Error()
		}
		return kp.Spec.PodUID == reborn.UID && meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady), fmt.Sprintf("%s %+v", kp.Spec.PodUID, kp.Status)
	})
	ports := f.ourPorts()
	if len(ports) != oldPorts {
		t.Fatalf("%d ports of ours, want %d (only the new pod's)", len(ports), oldPorts)
	}
	for _, p := range ports {
		if tagValue(p.Tags, tagPrefixPod) != string(reborn.UID) {
			t.Fatalf("port %s still belongs to the old pod %s", p.ID, old.UID)
		}
	}
	f.deletePod("reborn")
	f.waitGone("reborn")
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}

// TestGarbageCollectorReleasesOrphans: ports of this cluster (its name and
// UID) whose pod does not exist (a crash right after creating them) are
// released once two rounds in a row found them orphaned; ports of another
// cluster with the same name, of live pods, and of the previous tag schema
// (the name alone) whose pod is not here are not touched; a port of the
// previous schema whose pod lives here is adopted (given the UID tag).
func TestGarbageCollectorReleasesOrphans(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	node := f.ns + "-node-0"
	srv := f.servers[node]
	stop := f.startController()
	alive := f.createPod("alive", node, "mgmt")
	f.waitReady("alive")
	stop()

	ours := clusterIdentity{name: f.clusterID, uid: f.opts.ClusterUID}
	mk := func(tags []string, uid string) string {
		t.Helper()
		p, err := f.cloud.CreatePort(f.ctx, openstackPortSpec(f.mgmtNet.NetworkID, f.mgmtNet.ID, tags, uid))
		must(t, err)
		return p.ID
	}
	orphan := mk(ours.tags(), "0rphan-uid")
	attached := mk(ours.tags(), "0rphan-uid-2")
	if _, err := f.cloud.AttachInterface(f.ctx, srv.Server.ID, attached); err != nil {
		t.Fatal(err)
	}
	foreign := mk(clusterIdentity{name: "another-cluster", uid: "another-uid"}.tags(), "0rphan-uid")
	sameName := mk(clusterIdentity{name: f.clusterID, uid: "uid-of-another-cluster"}.tags(), "0rphan-uid-3")
	legacyOrphan := mk([]string{clusterTag(f.clusterID)}, "0rphan-uid-4")
	legacyAlive := mk([]string{clusterTag(f.clusterID)}, string(alive.UID))
	all := []string{orphan, attached, foreign, sameName, legacyOrphan, legacyAlive}

	gc := NewGarbageCollector(NewPodReconciler(f.c, f.cloud, nil, f.opts, nil))
	if n, err := gc.Collect(f.ctx); err != nil || n != 0 {
		t.Fatalf("first round released %d pods' ports (%v), want none: an orphan goes on its second sighting", n, err)
	}
	for _, id := range all {
		if _, ok := f.sim.Port(id); !ok {
			t.Fatalf("first round deleted port %s", id)
		}
	}
	if n, err := gc.Collect(f.ctx); err != nil || n != 2 {
		t.Fatalf("second round released %d pods' ports (%v), want 2", n, err)
	}
	for _, id := range []string{orphan, attached} {
		if _, ok := f.sim.Port(id); ok {
			t.Errorf("orphan %s still there after two rounds", id)
		}
	}
	for id, what := range map[string]string{foreign: "another cluster's port", sameName: "the port of another cluster with the same name",
		legacyOrphan: "a previous-schema port whose pod is not here", legacyAlive: "a live pod's previous-schema port"} {
		if _, ok := f.sim.Port(id); !ok {
			t.Errorf("GC deleted %s (%s)", what, id)
		}
	}
	if p, _ := f.sim.Port(legacyAlive); !ours.owns(openstack.Port{Tags: p.Tags}) {
		t.Errorf("a live pod's previous-schema port was not adopted: tags %v", p.Tags)
	}
	if p, _ := f.sim.Port(legacyOrphan); tagValue(p.Tags, tagPrefixClusterUID) != "" {
		t.Errorf("a previous-schema port whose pod is not here was adopted: tags %v", p.Tags)
	}
}

// TestCloudOutageDoesNotHoldDeletion: with Neutron and Nova down, a deleted
// pod still goes once releaseTimeout has passed since its deletion, with a
// ReleaseDeferred Event; its ports stay in the cloud, tagged, and the
// garbage collector releases them once the cloud is back (two rounds).
func TestCloudOutageDoesNotHoldDeletion(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	f.opts.ReleaseTimeout = Duration{2 * time.Second}
	node := f.ns + "-node-0"
	f.startController()
	f.createPod("held", node, "dataplane")
	f.waitReady("held")
	f.sim.SetFault("neutron.*", cloudsim.Fault{Rate: 1, Status: 503})
	f.sim.SetFault("nova.*", cloudsim.Fault{Rate: 1, Status: 503})
	start := time.Now()
	f.deletePod("held")
	f.waitGone("held")
	// A deletion timestamp has whole seconds: the release timeout counts
	// from up to a second before the delete call.
	if took := time.Since(start); took < f.opts.ReleaseTimeout.Duration-time.Second {
		t.Fatalf("the pod went after %s, before releaseTimeout %s, with the cloud down", took, f.opts.ReleaseTimeout)
	}
	if left := f.leftovers(); left == "" {
		t.Fatal("nothing left in the cloud: the outage did not hold the release")
	}
	f.eventually(10*time.Second, "the ReleaseDeferred Event", func() (bool, string) {
		evs := f.events("held")
		return slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, "ReleaseDeferred") }), strings.Join(evs, "; ")
	})

	f.sim.SetFault("neutron.*", cloudsim.Fault{})
	f.sim.SetFault("nova.*", cloudsim.Fault{})
	gc := NewGarbageCollector(NewPodReconciler(f.c, f.cloud, nil, f.opts, nil))
	for round := 0; round < 2; round++ {
		if _, err := gc.Collect(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.eventually(20*time.Second, "the garbage collector to release the ports", func() (bool, string) {
		if _, err := gc.Collect(f.ctx); err != nil {
			return false, err.Error()
		}
		left := f.leftovers()
		return left == "", left
	})
}

// TestOutageLongerThanActiveTimeout: a pod created while Neutron answers
// 503 for three times activeTimeout is not rolled back: the timeout counts
// from the step that waits for ACTIVE, and the pod's retries (backing off)
// resume when the cloud answers again, and it becomes Ready.
func TestOutageLongerThanActiveTimeout(t *testing.T) {
	f := newFixture(t, 1)
	f.opts.ActiveTimeout = Duration{time.Second}
	node := f.ns + "-node-0"
	f.startController()
	f.createPod("warm", node, "") // the node resolved before the outage
	f.waitReady("warm")

	f.sim.SetFault("neutron.*", cloudsim.Fault{Rate: 1, Status: 503})
	f.createPod("patient", node, "")
	outage := time.Now()
	f.eventually(10*time.Second, "the KuryrPod waiting on the cloud", func() (bool, string) {
		kp, err := f.kuryrPod("patient")
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Reason == reasonPending, fmt.Sprintf("%+v", kp.Status)
	})
	// The outage lasts three activeTimeouts (what is asserted is the
	// outcome after it, not its length).
	time.Sleep(3*f.opts.ActiveTimeout.Duration - time.Since(outage))
	f.sim.SetFault("neutron.*", cloudsim.Fault{})

	kp := f.waitReady("patient")
	if c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("patient: %+v", kp.Status)
	}
	for _, e := range f.events("patient") {
		if strings.HasPrefix(e, reasonFailed) {
			t.Errorf("the pod was rolled back during the outage: %s", e)
		}
	}
}

// TestPodOfDeletedNodeReleasedWithoutUnplugWait: a deleted pod whose
// interfaces the daemon reported plugged waits up to releaseGrace for the
// daemon's unplug, unless its Node is gone (the VM deleted: no daemon is
// left to unplug it); then it is released at once. Found by the fault
// soak, where every pod of the deleted node waited the whole grace.
func TestPodOfDeletedNodeReleasedWithoutUnplugWait(t *testing.T) {
	f := newFixture(t, 2)
	f.standardNADs()
	f.opts.ReleaseGrace = Duration{time.Minute}
	f.startController()
	gone, kept := f.ns+"-node-0", f.ns+"-node-1"
	f.createPod("orphan", gone, "dataplane")
	f.createPod("waits", kept, "dataplane")
	for _, name := range []string{"orphan", "waits"} {
		kp := f.waitReady(name)
		for i := range kp.Status.Interfaces { // as the daemon reports its ADD
			kp.Status.Interfaces[i].State = v1alpha1.StatePlugged
		}
		must(t, f.c.Status().Update(f.ctx, kp))
	}
	must(t, f.c.Delete(f.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: gone}}))
	start := time.Now()
	f.deletePod("orphan")
	f.deletePod("waits")
	f.waitGone("orphan")
	if took := time.Since(start); took > f.opts.ReleaseGrace.Duration/2 {
		t.Fatalf("the deleted node's pod went after %s: it waited for an unplug no daemon will make", took)
	}
	if _, err := f.kuryrPod("waits"); err != nil {
		t.Fatalf("the live node's plugged pod did not wait for its daemon's unplug: %v", err)
	}
}
