package controller

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// nodeKept says what r still keeps of node name, whose trunk is trunkID
// and server serverID (empty: nothing): its cloud facts, its trunk's VLAN
// IDs, its KuryrNode's write lock and copy, its VM's hot-plug slots.
func nodeKept(r *PodReconciler, name, trunkID, serverID string) string {
	var kept []string
	if _, ok := r.nodes.cached(name); ok {
		kept = append(kept, "cloud facts")
	}
	if slices.ContainsFunc(r.nodes.known(), func(n nodeInfo) bool { return n.Name == name }) {
		kept = append(kept, "known")
	}
	if _, ok := r.nodes.knownTrunk(trunkID); ok {
		kept = append(kept, "trunk "+trunkID+"'s VLAN IDs")
	}
	if _, ok := r.nodeWrites.Load(name); ok {
		kept = append(kept, "KuryrNode write lock")
	}
	if _, ok := r.nodeCopies.Load(name); ok {
		kept = append(kept, "KuryrNode copy")
	}
	r.slots.mu.Lock()
	if _, ok := r.slots.byServer[serverID]; ok {
		kept = append(kept, "hot-plug slots")
	}
	r.slots.mu.Unlock()
	return fmt.Sprint(kept)
}

// kuryrNode reads node's KuryrNode from the API server.
func (f *fixture) kuryrNode(node string) (*v1alpha1.KuryrNode, error) {
	kn := &v1alpha1.KuryrNode{}
	err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, kn)
	return kn, err
}

// ownedBy says whether kn's owners are exactly node (by UID).
func ownedBy(kn *v1alpha1.KuryrNode, node *corev1.Node) bool {
	return len(kn.OwnerReferences) == 1 && kn.OwnerReferences[0].Kind == "Node" && kn.OwnerReferences[0].APIVersion == "v1" &&
		kn.OwnerReferences[0].Name == node.Name && kn.OwnerReferences[0].UID == node.UID
}

// TestKuryrNodeOwnedByItsNode: a KuryrNode is owned by its Node, so that
// Kubernetes' garbage collector deletes it with the Node. One made by the
// pools' path (a declared pool, before any pod) gets the owner reference
// when it is made; one made without an owner (by an earlier version) gets
// it added, its status written as for any node.
func TestKuryrNodeOwnedByItsNode(t *testing.T) {
	f := newFixture(t, 2)
	made, old := f.ns+"-node-0", f.ns+"-node-1"
	must(t, f.c.Create(f.ctx, &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: old}}))
	f.opts.Pools.NestedVLAN, f.opts.Pools.NestedVLANNetworks = PoolSize{Min: 1, Max: 1, Batch: 1}, []PoolNetwork{{SubnetID: f.podSubnet}}
	f.startController()
	for _, name := range []string{made, old} {
		var node corev1.Node
		must(t, f.c.Get(f.ctx, types.NamespacedName{Name: name}, &node))
		f.eventually(20*time.Second, "KuryrNode "+name+" owned by its Node, with its pool", func() (bool, string) {
			kn, err := f.kuryrNode(name)
			if err != nil {
				return false, err.Error()
			}
			return ownedBy(kn, &node) && len(kn.Status.Pools) == 1 && kn.Status.ServerID == f.servers[name].Server.ID,
				fmt.Sprintf("owners %+v, status %+v", kn.OwnerReferences, kn.Status)
		})
	}
}

// TestDeletedNodeIsForgotten: once a Node is deleted the controller keeps
// nothing of it (cloud facts, trunk VLAN IDs, KuryrNode write lock and
// copy, the count of its VM's hot-plug slots), and nothing writes its
// KuryrNode again: deleted (as Kubernetes' garbage collector does with its
// owner gone; the test's API server runs no garbage collector), it is not
// made again by the pools' rounds (the
// node's pool drained and dropped, then two more rounds), the garbage
// collector's refresh, a release's recordServer or a claim's publishNode.
// The node's ports are not lost: its pool's idle ports are released, and
// the pod's own ports (one of them a DPDK port attached to the VM, which
// counts its hot-plug slots) with the pod.
func TestDeletedNodeIsForgotten(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	srv := f.servers[node]
	f.opts.Pools.NestedVLAN = PoolSize{Min: 1, Max: 2, Batch: 2}
	f.standardNADs()
	var n corev1.Node
	must(t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &n))
	n.Annotations = map[string]string{v1alpha1.HotplugSlotsAnnotation: "4"}
	must(t, f.c.Update(f.ctx, &n))
	f.startController()
	f.createPod("first", node, "dataplane")
	f.waitReady("first")
	f.waitPoolReady(node, 2)
	r := f.rec.Load()
	f.eventually(10*time.Second, "the node and its KuryrNode known", func() (bool, string) {
		_, err := f.kuryrNode(node)
		kept := nodeKept(r, node, srv.TrunkID, srv.Server.ID)
		return err == nil && kept == "[cloud facts known trunk "+srv.TrunkID+"'s VLAN IDs KuryrNode write lock KuryrNode copy hot-plug slots]",
			fmt.Sprintf("KuryrNode: %v; kept %s", err, kept)
	})

	must(t, f.c.Delete(f.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}))
	f.eventually(10*time.Second, "the deleted node forgotten", func() (bool, string) {
		kept := nodeKept(r, node, srv.TrunkID, srv.Server.ID)
		return kept == "[]", "kept " + kept
	})
	kn, err := f.kuryrNode(node)
	must(t, err)
	must(t, f.c.Delete(f.ctx, kn))
	f.eventually(20*time.Second, "the deleted node's pool drained and dropped", func() (bool, string) {
		_, pooled := r.pools.byNode()[node]
		return !pooled, fmt.Sprintf("pools %+v", r.pools.byNode()[node])
	})
	must(t, r.refreshNodes(f.ctx))
	r.recordServer(f.ctx, srv.Server.ID)
	must(t, r.pools.publishNode(f.ctx, node))
	time.Sleep(2 * poolTick)
	if kn, err := f.kuryrNode(node); !apierrors.IsNotFound(err) {
		t.Fatalf("the deleted node's KuryrNode was made again (error %v): %+v", err, kn)
	}
	if kept := nodeKept(r, node, srv.TrunkID, srv.Server.ID); kept != "[]" {
		t.Fatalf("the deleted node is kept again: %s", kept)
	}

	f.deletePod("first")
	f.waitGone("first")
	f.eventually(20*time.Second, "nothing of ours left in the cloud", func() (bool, string) {
		left := f.leftovers()
		return left == "", left
	})
}

// TestNodeDeletedDuringItsLookupIsNotCached: a pod's node looked up in the
// cloud (its server's ports, held by the test) while its Node is deleted:
// the answer, which came after the deletion, is not cached, so the node is
// not known again, and no KuryrNode is made for it. The pod's port is
// released with the pod.
func TestNodeDeletedDuringItsLookupIsNotCached(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	srv := f.servers[node]
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.interpose(30*time.Second, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Query().Get("device_id") == srv.Server.ID {
			once.Do(func() {
				close(held)
				<-release
			})
		}
		next.ServeHTTP(w, r)
	})
	f.startController()
	var unhold sync.Once
	unblock := func() { unhold.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the controller's stop: its reconcile waits for the answer
	r := f.rec.Load()
	f.createPod("first", node, "")
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the pod's node was not looked up")
	}
	read := r.nodes.read()
	must(t, f.c.Delete(f.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}))
	f.eventually(10*time.Second, "the Node's deletion seen by the controller", func() (bool, string) {
		return r.nodes.read() > read, "no forget yet"
	})
	creates := f.sim.Count("neutron.ports.create")
	unblock()
	// The pod's port is made once its node is resolved.
	f.eventually(20*time.Second, "the pod's port made", func() (bool, string) {
		return f.sim.Count("neutron.ports.create") > creates, "no port created"
	})
	if _, ok := r.nodes.cached(node); ok {
		t.Fatal("the lookup that ended after the Node's deletion was cached: the deleted node is known again")
	}
	if kn, err := f.kuryrNode(node); !apierrors.IsNotFound(err) {
		t.Fatalf("a KuryrNode was made for the deleted node (error %v): %+v", err, kn)
	}
	f.deletePod("first")
	f.waitGone("first")
	f.eventually(20*time.Second, "nothing of ours left in the cloud", func() (bool, string) {
		left := f.leftovers()
		return left == "", left
	})
}
