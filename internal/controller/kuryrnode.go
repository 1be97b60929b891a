package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// recordNode writes what the controller learnt of a node VM (server,
// parent port, trunk, VLAN IDs in use, pools, the nested-dpdk ports
// attached to it and whose each is) into its KuryrNode, for operators and
// tools, and for the node's daemon, which binds a DPDK device only for
// the owner listed there. It is a cache: Neutron stays the source of
// truth.
//
// The writes of one node's KuryrNode are made one at a time, each of the
// state at its moment: a write computed before a port changed hands never
// lands after the write that shows the change.
func (r *PodReconciler) recordNode(ctx context.Context, info nodeInfo) error {
	defer r.lockNode(info.Name)()
	return r.recordNodeLocked(ctx, info)
}

// lockNode takes node name's KuryrNode write lock (recordNode) and
// returns its release. A lock that forgetNode dropped while this waited
// for it is let go, and the node's current one taken: one writer at a
// time, before and after a forget.
func (r *PodReconciler) lockNode(name string) (unlock func()) {
	for {
		v, _ := r.nodeWrites.LoadOrStore(name, &sync.Mutex{})
		mu := v.(*sync.Mutex)
		mu.Lock()
		if cur, ok := r.nodeWrites.Load(name); ok && cur == v {
			return mu.Unlock
		}
		mu.Unlock()
	}
}

// forgetNode drops what the controller keeps of node name, whose Node was
// deleted: its cloud facts and its trunk's VLAN IDs (nodes.forget; a
// lookup under way is not cached), the count of its VM's hot-plug slots,
// and its KuryrNode's write lock and last copy. Nothing writes that
// KuryrNode again (recordNodeLocked needs the Node); Kubernetes' garbage
// collector deletes it with the Node, its owner. The node's pools are
// drained and dropped by the pools' rounds (fill), and with them what the
// pools kept of the node (forgetNodes);
// its ports are released by their pods' release or by the garbage
// collector, by their tags (gc.go): none needs the node's cloud facts.
func (r *PodReconciler) forgetNode(name string) {
	if info, ok := r.nodes.cached(name); ok {
		r.slots.forget(info.ServerID)
	}
	r.nodes.forget(name)
	unlock := r.lockNode(name)
	r.nodeWrites.Delete(name)
	r.nodeCopies.Delete(name)
	unlock()
}

// recordNodeLocked is recordNode with the node's write lock held. Once it
// returns nil, nodeCopies holds the KuryrNode as it shows the node now
// (written, or found so); any failure drops the copy (the next pool round
// then writes the node again: pools.publish).
//
// The KuryrNode is owned by its Node (an owner reference, set when it is
// made and added to one made without: ownByNode), so that Kubernetes'
// garbage collector deletes it with the Node. The Node is read (from the
// cache) at each write: a Node that is gone gets no write at all, so no
// late write (a pool round, a release's recordServer, a pod's lookup that
// ended after its node's deletion) makes its KuryrNode again.
func (r *PodReconciler) recordNodeLocked(ctx context.Context, info nodeInfo) (err error) {
	defer func() {
		if err != nil {
			r.nodeCopies.Delete(info.Name)
		}
	}()
	node := &corev1.Node{}
	if err := r.client.Get(ctx, types.NamespacedName{Name: info.Name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: its write lock goes too (held here: see lockNode),
			// as forgetNode drops it.
			r.nodeWrites.Delete(info.Name)
		}
		return fmt.Errorf("get node %s to record its KuryrNode: %w", info.Name, err)
	}
	st := v1alpha1.KuryrNodeStatus{
		ServerID: info.ServerID, ParentPortID: info.ParentPortID, ParentMAC: info.ParentMAC,
		ParentIPs: info.ParentIPs, TrunkID: info.TrunkID, VLANIDs: r.nodes.vlanIDs(info.TrunkID),
		Pools: r.pools.byNode()[info.Name], HotplugSlots: r.slots.status(info.ServerID),
		DPDKDevices: r.pools.devicesByNode()[info.Name],
	}
	kn := &v1alpha1.KuryrNode{}
	err = r.client.Get(ctx, types.NamespacedName{Name: info.Name}, kn)
	if apierrors.IsNotFound(err) {
		kn = &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: info.Name, OwnerReferences: []metav1.OwnerReference{nodeOwner(node)}}}
		if err = r.client.Create(ctx, kn); apierrors.IsAlreadyExists(err) {
			// Another pod of the node got there first.
			err = r.client.Get(ctx, types.NamespacedName{Name: info.Name}, kn)
		}
		if err != nil {
			return fmt.Errorf("create KuryrNode %s: %w", info.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("get KuryrNode %s: %w", info.Name, err)
	}
	copied := false
	if last, ok := r.nodeCopies.Load(info.Name); ok && last.(*v1alpha1.KuryrNode).UID == kn.UID {
		// The copy this controller last wrote, which the cache may not
		// have caught up with yet (the controller is the KuryrNodes' one
		// writer): writing from the cache's older copy would conflict.
		kn, copied = last.(*v1alpha1.KuryrNode).DeepCopy(), true
	}
	if patched, err := r.ownByNode(ctx, kn, node); err != nil {
		return err
	} else if patched {
		copied = false
	}
	st.DPDKDevices = withUnpooled(st.DPDKDevices, r.attached.onServer(info.ServerID, kn.Status.DPDKDevices))
	if kn.Status.ServerID == st.ServerID && kn.Status.TrunkID == st.TrunkID && kn.Status.ParentPortID == st.ParentPortID &&
		slices.Equal(kn.Status.VLANIDs, st.VLANIDs) && slices.Equal(kn.Status.ParentIPs, st.ParentIPs) &&
		equality.Semantic.DeepEqual(kn.Status.Pools, st.Pools) && equality.Semantic.DeepEqual(kn.Status.HotplugSlots, st.HotplugSlots) &&
		equality.Semantic.DeepEqual(kn.Status.DPDKDevices, st.DPDKDevices) {
		if !copied {
			r.nodeCopies.Store(info.Name, kn.DeepCopy())
		}
		return nil
	}
	st.Conditions = kn.Status.Conditions
	kn.Status = st
	if err := r.client.Status().Update(ctx, kn); err != nil {
		return fmt.Errorf("update KuryrNode %s: %w", info.Name, err)
	}
	r.nodeCopies.Store(info.Name, kn.DeepCopy())
	return nil
}

// nodeOwner is the owner reference of node's KuryrNode. Not
// blockOwnerDeletion: the Node's deletion does not wait for it.
func nodeOwner(node *corev1.Node) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}
}

// ownByNode makes node the owner of its KuryrNode kn unless it is
// already: a KuryrNode made without an owner (by an earlier version of the
// controller), or owned by an earlier Node of the same name, gets its
// Node's reference in place of any other Node's, with one merge patch that
// carries kn's resource version (a patch from an older copy conflicts);
// owners of other kinds are kept. patched says kn is the patched object.
func (r *PodReconciler) ownByNode(ctx context.Context, kn *v1alpha1.KuryrNode, node *corev1.Node) (patched bool, err error) {
	ref := nodeOwner(node)
	isNode := func(o metav1.OwnerReference) bool { return o.APIVersion == ref.APIVersion && o.Kind == ref.Kind }
	if slices.ContainsFunc(kn.OwnerReferences, func(o metav1.OwnerReference) bool { return isNode(o) && o.UID == ref.UID }) {
		return false, nil
	}
	before := kn.DeepCopy()
	kn.OwnerReferences = append(slices.DeleteFunc(slices.Clone(kn.OwnerReferences), isNode), ref)
	if err := r.client.Patch(ctx, kn, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("make node %s the owner of KuryrNode %s: %w", node.Name, kn.Name, err)
	}
	return true, nil
}

// nodeShows says whether node name's KuryrNode, as this controller last
// wrote or found it (nodeCopies, under the node's write lock: no write
// under way), shows st as its pools and its pools' DPDK devices, whichever
// path wrote it. No copy (none yet, or the last write failed): false.
func (r *PodReconciler) nodeShows(name string, st nodePoolStatus) bool {
	last, ok := r.nodeCopies.Load(name)
	if !ok {
		return false
	}
	kn := last.(*v1alpha1.KuryrNode)
	pooled := slices.DeleteFunc(slices.Clone(kn.Status.DPDKDevices), func(d v1alpha1.DPDKDevice) bool { return d.Unpooled })
	return equality.Semantic.DeepEqual(kn.Status.Pools, st.pools) && equality.Semantic.DeepEqual(pooled, st.devices)
}

// recordOwners writes node info's KuryrNode now, retrying a conflict (a
// write from an older copy: another writer's change): the node's daemon binds a DPDK
// device for a pod only once the KuryrNode lists the pod as its owner, so
// this comes before the pod's status says its interface is ACTIVE.
func (r *PodReconciler) recordOwners(ctx context.Context, info nodeInfo) error {
	return retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, func() error { return r.recordNode(ctx, info) })
}

// withUnpooled returns the pool's devices with the unpooled ones, sorted
// by port ID; a port in both (never: a pool's port is not recorded as
// unpooled) is listed once, as the pool's.
func withUnpooled(pooled, unpooled []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice {
	if len(unpooled) == 0 {
		return pooled
	}
	out := slices.Clone(pooled)
	for _, d := range unpooled {
		if !slices.ContainsFunc(pooled, func(p v1alpha1.DPDKDevice) bool { return p.PortID == d.PortID }) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b v1alpha1.DPDKDevice) int { return strings.Compare(a.PortID, b.PortID) })
	return out
}

// recordServer rewrites the KuryrNode of the node whose VM is server
// serverID, if known, after its hot-plug slots or its attached ports
// changed.
func (r *PodReconciler) recordServer(ctx context.Context, serverID string) {
	for _, info := range r.nodes.known() {
		if info.ServerID == serverID {
			if err := r.recordNode(ctx, info); err != nil {
				log.FromContext(ctx).Info("KuryrNode not recorded", "node", info.Name, "reason", err.Error())
			}
		}
	}
}

// refreshNodes rewrites the KuryrNodes whose facts changed since (the VLAN
// IDs in use), from the controller's caches alone: no cloud call.
func (r *PodReconciler) refreshNodes(ctx context.Context) error {
	for _, info := range r.nodes.known() {
		if err := r.recordNode(ctx, info); err != nil {
			return err
		}
	}
	return nil
}
