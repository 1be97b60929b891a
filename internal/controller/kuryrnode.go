package controller

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// recordNode writes what the controller learnt of a node VM (server,
// parent port, trunk, VLAN IDs in use) into its KuryrNode, for operators
// and tools. It is a cache: Neutron stays the source of truth.
func (r *PodReconciler) recordNode(ctx context.Context, node *corev1.Node, info nodeInfo) error {
	st := v1alpha1.KuryrNodeStatus{
		ServerID: info.ServerID, ParentPortID: info.ParentPortID, ParentMAC: info.ParentMAC,
		ParentIPs: info.ParentIPs, TrunkID: info.TrunkID, VLANIDs: r.nodes.vlanIDs(info.TrunkID),
		Pools: r.pools.byNode()[info.Name], HotplugSlots: r.slots.status(info.ServerID),
		DPDKDevices: r.pools.devicesByNode()[info.Name],
	}
	kn := &v1alpha1.KuryrNode{}
	err := r.client.Get(ctx, types.NamespacedName{Name: info.Name}, kn)
	if apierrors.IsNotFound(err) {
		kn = &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: info.Name}}
		if node != nil {
			kn.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
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
	if kn.Status.ServerID == st.ServerID && kn.Status.TrunkID == st.TrunkID && kn.Status.ParentPortID == st.ParentPortID &&
		slices.Equal(kn.Status.VLANIDs, st.VLANIDs) && slices.Equal(kn.Status.ParentIPs, st.ParentIPs) &&
		equality.Semantic.DeepEqual(kn.Status.Pools, st.Pools) && equality.Semantic.DeepEqual(kn.Status.HotplugSlots, st.HotplugSlots) &&
		equality.Semantic.DeepEqual(kn.Status.DPDKDevices, st.DPDKDevices) {
		return nil
	}
	st.Conditions = kn.Status.Conditions
	kn.Status = st
	if err := r.client.Status().Update(ctx, kn); err != nil {
		return fmt.Errorf("update KuryrNode %s: %w", info.Name, err)
	}
	return nil
}

// recordSlots rewrites the KuryrNode of the node whose VM is server
// serverID, if known, after its hot-plug slots changed.
func (r *PodReconciler) recordSlots(ctx context.Context, serverID string) {
	for _, info := range r.nodes.known() {
		if info.ServerID == serverID {
			if err := r.recordNode(ctx, nil, info); err != nil {
				log.FromContext(ctx).Info("KuryrNode hot-plug slots not recorded", "node", info.Name, "reason", err.Error())
			}
		}
	}
}

// refreshNodes rewrites the KuryrNodes whose facts changed since (the VLAN
// IDs in use), from the controller's caches alone: no cloud call.
func (r *PodReconciler) refreshNodes(ctx context.Context) error {
	for _, info := range r.nodes.known() {
		if err := r.recordNode(ctx, nil, info); err != nil {
			return err
		}
	}
	return nil
}
