package controller

import (
	"context"
	"fmt"
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
)

// TestChaosFaultsAndRestarts: with 30 % of cloud requests failing (some
// after doing the work, so the answer is lost) and the controller stopped
// and restarted three times while 50 pods come and go, every pod ends Ready
// or cleanly failed, and afterwards the cloud holds no port of ours.
func TestChaosFaultsAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: chaos run is not short (-short given)")
	}
	f := newFixture(t, 3)
	f.opts.Primary = false
	f.standardNADs()
	f.sim.SetFault("neutron.*", cloudsim.Fault{Rate: 0.3, Status: 503})
	f.sim.SetFault("nova.*", cloudsim.Fault{Rate: 0.3, Status: 500})
	// Lost answers: the cloud did the work, the controller cannot know.
	f.sim.SetFault("neutron.ports.create", cloudsim.Fault{Rate: 0.3, Status: 500, After: true})
	f.sim.SetFault("neutron.trunks.add_subports", cloudsim.Fault{Rate: 0.3, Status: 502, After: true})
	f.sim.SetFault("nova.interfaces.attach", cloudsim.Fault{Rate: 0.3, Status: 504, After: true})

	const pods = 50
	stop := f.startController()
	restarts := 0
	restart := func() {
		stop()
		restarts++
		stop = f.startController()
	}
	for i := 0; i < pods; i++ {
		f.createPod(fmt.Sprintf("p%02d", i), fmt.Sprintf("%s-node-%d", f.ns, i%3), "mgmt,dataplane")
		if i == 15 || i == 35 {
			time.Sleep(300 * time.Millisecond) // let it get busy, then kill it mid-work
			restart()
		}
	}
	// Every pod ends Ready or cleanly failed (rolled back, reason given).
	outcome := map[string]int{}
	f.eventually(3*time.Minute, "every pod Ready or failed", func() (bool, string) {
		outcome = map[string]int{}
		for i := 0; i < pods; i++ {
			kp, err := f.kuryrPod(fmt.Sprintf("p%02d", i))
			if err != nil {
				return false, fmt.Sprintf("p%02d: %v", i, err)
			}
			c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
			switch {
			case c != nil && c.Status == metav1.ConditionTrue:
				outcome["ready"]++
			case c != nil && c.Reason == reasonFailed:
				outcome["failed"]++
			default:
				return false, fmt.Sprintf("p%02d: %+v", i, kp.Status)
			}
		}
		return true, ""
	})
	faults := int64(0)
	for _, op := range f.sim.Operations() {
		faults += f.sim.FaultCount(op)
	}
	t.Logf("outcome with 30%% faults and %d restarts: %v; cloud requests %d, faults injected %d", restarts, outcome, f.calls.Load(), faults)
	if faults == 0 {
		t.Fatal("no fault was injected: the test proves nothing")
	}
	if outcome["ready"] == 0 {
		t.Fatalf("no pod became Ready: %v", outcome)
	}

	// Delete them all, killing the controller once more half-way.
	for i := 0; i < pods; i++ {
		f.deletePod(fmt.Sprintf("p%02d", i))
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
	// With the cloud healthy again, one GC round must find nothing, or
	// clean up what a lost answer left (a port created but never seen).
	f.sim.SetFault("neutron.*", cloudsim.Fault{})
	f.sim.SetFault("nova.*", cloudsim.Fault{})
	f.sim.SetFault("neutron.ports.create", cloudsim.Fault{})
	f.sim.SetFault("neutron.trunks.add_subports", cloudsim.Fault{})
	f.sim.SetFault("nova.interfaces.attach", cloudsim.Fault{})
	stop()
	r := NewPodReconciler(f.c, f.cloud, nil, f.opts, nil)
	f.eventually(time.Minute, "GC to leave nothing", func() (bool, string) {
		if _, err := NewGarbageCollector(r).Collect(context.Background()); err != nil {
			return false, err.Error()
		}
		left := f.leftovers()
		return left == "", left
	})
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

// TestGarbageCollectorReleasesOrphans: ports tagged with our cluster ID whose
// pod does not exist (a crash right after creating them) are released at
// start; ports of other clusters and of live pods are not touched.
func TestGarbageCollectorReleasesOrphans(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	node := f.ns + "-node-0"
	srv := f.servers[node]
	stop := f.startController()
	f.createPod("alive", node, "mgmt")
	f.waitReady("alive")
	stop()

	mk := func(cluster, uid string) string {
		t.Helper()
		p, err := f.cloud.CreatePort(f.ctx, openstackPortSpec(f.mgmtNet.NetworkID, f.mgmtNet.ID, cluster, uid))
		must(t, err)
		return p.ID
	}
	orphan := mk(f.clusterID, "0rphan-uid")
	attached := mk(f.clusterID, "0rphan-uid-2")
	if _, err := f.cloud.AttachInterface(f.ctx, srv.Server.ID, attached); err != nil {
		t.Fatal(err)
	}
	foreign := mk("another-cluster", "0rphan-uid")
	before := len(f.ourPorts())

	f.startController() // GC runs at start
	f.eventually(20*time.Second, "orphans released", func() (bool, string) {
		_, a := f.sim.Port(orphan)
		_, b := f.sim.Port(attached)
		return !a && !b, fmt.Sprintf("orphan present %v, attached orphan present %v", a, b)
	})
	if _, ok := f.sim.Port(foreign); !ok {
		t.Fatal("GC deleted another cluster's port")
	}
	if got := len(f.ourPorts()); got != before-2 {
		t.Fatalf("%d ports of ours left, want %d (the live pod's)", got, before-2)
	}
}
