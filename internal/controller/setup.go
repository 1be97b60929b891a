package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// SetupWithManager registers the pod controller: pods (those on a node, not
// host-network), their KuryrPods, and NADs (a NAD created or fixed wakes the
// pods that wait for it).
//
// Unless Options.ClusterUID is set, the manager reads it once the
// controller leads (kube-system's UID, from the API server itself; retried
// until the API server answers: readIdentity), before anything is
// reconciled.
func (r *PodReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.opts.ClusterUID == "" {
		reader := mgr.GetAPIReader()
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return r.readIdentity(ctx, reader) })); err != nil {
			return fmt.Errorf("add the cluster UID reader: %w", err)
		}
	}
	if err := r.watchNodeDeletions(mgr.GetCache()); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.KuryrPod{}, indexWaitingFor, waitingForIndex); err != nil {
		return fmt.Errorf("index KuryrPods by %s: %w", indexWaitingFor, err)
	}
	if r.opts.Pools.any() {
		if err := mgr.Add(r.pools); err != nil {
			return fmt.Errorf("add the pools: %w", err)
		}
	}
	if r.opts.Pools.NestedDPDK.on() {
		if err := r.setupClaims(mgr); err != nil {
			return fmt.Errorf("set up the ResourceClaim controller: %w", err)
		}
	}
	scheduled := predicate.NewPredicateFuncs(func(o client.Object) bool {
		p, ok := o.(*corev1.Pod)
		return ok && p.Spec.NodeName != "" && !p.Spec.HostNetwork
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("kuryr-pod").
		For(&corev1.Pod{}, builder.WithPredicates(scheduled)).
		Watches(&v1alpha1.KuryrPod{}, handler.EnqueueRequestsFromMapFunc(sameName), builder.WithPredicates(r.othersChanges())).
		Watches(&nadv1.NetworkAttachmentDefinition{}, handler.EnqueueRequestsFromMapFunc(r.podsWaitingForNAD)).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.opts.Workers,
			// Backoff per pod on errors: fast at first, never above 30 s,
			// so a pod recovers soon after the cloud does.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 30*time.Second),
		}).
		Complete(r)
}

// watchNodeDeletions forgets each Node deleted (forgetNode) as soon as the
// cache's Node informer drops it: a handler on that informer, added before
// the cache starts, so that no deletion goes unseen while the controller
// runs, whichever of its parts resolved the node first. The informer
// removes a Node from the cache before it tells its handlers, which is
// what nodes.resolve relies on not to cache a Node read just before.
func (r *PodReconciler) watchNodeDeletions(c crcache.Cache) error {
	inf, err := c.GetInformer(context.Background(), &corev1.Node{})
	if err != nil {
		return fmt.Errorf("the informer of Nodes: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if n, ok := obj.(*corev1.Node); ok {
			r.forgetNode(n.Name)
		}
	}}); err != nil {
		return fmt.Errorf("watch Node deletions: %w", err)
	}
	return nil
}

// othersChanges lets through the KuryrPod events the controller must act
// on: creation and deletion (also at start, for KuryrPods whose pod is
// gone), deletion requested, and any change of the status that the
// controller did not write itself (ownWrites): the daemon plugging or
// unplugging an interface (a deleted pod's release waits for the unplug),
// or a forged status, which is checked and refused at once (checkOwner),
// not whenever the pod next changes. The controller's own status writes,
// and changes of the metadata alone, are left out: they would only wake
// the pod again for nothing (its polls are scheduled).
func (r *PodReconciler) othersChanges() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.KuryrPod)
			n, ok2 := e.ObjectNew.(*v1alpha1.KuryrPod)
			if !ok1 || !ok2 {
				return true
			}
			if n.DeletionTimestamp != nil {
				return true
			}
			return !equality.Semantic.DeepEqual(o.Status, n.Status) && !r.own.mine(n)
		},
	}
}

// plugged lists which interfaces are Plugged, as a comparable string.
func plugged(kp *v1alpha1.KuryrPod) string {
	var b strings.Builder
	for _, s := range kp.Status.Interfaces {
		if s.State == v1alpha1.StatePlugged {
			b.WriteString(s.IfName)
			b.WriteByte(',')
		}
	}
	return b.String()
}

// sameName maps a KuryrPod to its pod (they share name and namespace); it
// also covers a KuryrPod whose pod is gone.
func sameName(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
}

// indexWaitingFor indexes KuryrPods by the NADs they wait for
// (status.waitingForNetworks), so that a NAD event finds its pods by field.
const indexWaitingFor = "status.waitingForNetworks"

func waitingForIndex(o client.Object) []string {
	kp, ok := o.(*v1alpha1.KuryrPod)
	if !ok {
		return nil
	}
	return kp.Status.WaitingForNetworks
}

// podsWaitingForNAD maps a NAD to the pods whose KuryrPod waits for it
// (status.waitingForNetworks, namespace/name: a pod of another namespace
// waits for it only if its plan could read it, i.e. cross-namespace
// references are allowed).
func (r *PodReconciler) podsWaitingForNAD(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.KuryrPodList
	if err := r.client.List(ctx, &list, client.MatchingFields{indexWaitingFor: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list KuryrPods waiting for a NetworkAttachmentDefinition", "nad", o.GetNamespace()+"/"+o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		kp := &list.Items[i]
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: kp.Namespace, Name: kp.Name}})
	}
	return out
}
