package controller

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

func newKuryrPod(pod *corev1.Pod) *v1alpha1.KuryrPod {
	yes := true
	return &v1alpha1.KuryrPod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace,
			Labels:     map[string]string{v1alpha1.NodeLabel: pod.Spec.NodeName, v1alpha1.PodUIDLabel: string(pod.UID)},
			Finalizers: []string{v1alpha1.Finalizer},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: v1alpha1.KuryrPodSpec{PodUID: pod.UID, NodeName: pod.Spec.NodeName},
	}
}

// writeStatus writes st as kp's status if it changed, with the resource
// version check (a conflict is retried by the caller's requeue). The write
// is recorded as the controller's own (ownStatuses) before it is sent: its
// watch event may come before the answer.
func (r *PodReconciler) writeStatus(ctx context.Context, kp *v1alpha1.KuryrPod, st *v1alpha1.KuryrPodStatus) error {
	st.ObservedGeneration = kp.Generation
	if equality.Semantic.DeepEqual(&kp.Status, st) {
		return nil
	}
	before := kp.ResourceVersion
	kp.Status = *st
	undo := r.own.wrote(kp.UID, st)
	if err := r.client.Status().Update(ctx, kp); err != nil {
		undo()
		return fmt.Errorf("update status of KuryrPod %s/%s: %w", kp.Namespace, kp.Name, err)
	}
	r.written.put(before, kp, r.now())
	return nil
}

// ownStatuses remembers, per KuryrPod (by UID), a digest of the status this
// controller last wrote to it, so that the KuryrPod watch can tell the
// controller's own writes, which need no reconcile (its polls are
// scheduled), from anyone else's: the daemon's, or a forged one, which the
// controller must see at once (othersChanges). A digest rather than the
// resource version the write returns, because the watch may bring the write
// before the answer does; SHA-256, so that no one can craft a status that
// passes for the controller's.
type ownStatuses struct {
	m sync.Map // types.UID → statusDigest
}

type statusDigest [sha256.Size]byte

// digestOf is the digest of st's JSON, which the same status read back from
// the API server has too (times in whole seconds, empty lists left out).
func digestOf(st *v1alpha1.KuryrPodStatus) (statusDigest, bool) {
	b, err := json.Marshal(st)
	if err != nil {
		return statusDigest{}, false
	}
	return sha256.Sum256(b), true
}

// wrote records st as the status about to be written to the KuryrPod with
// uid. undo puts the previous record back, for a write that failed.
func (o *ownStatuses) wrote(uid types.UID, st *v1alpha1.KuryrPodStatus) (undo func()) {
	var prev any
	var had bool
	if d, ok := digestOf(st); ok {
		prev, had = o.m.Swap(uid, d)
	} else {
		prev, had = o.m.LoadAndDelete(uid)
	}
	return func() {
		if had {
			o.m.Store(uid, prev)
		} else {
			o.m.Delete(uid)
		}
	}
}

// mine says whether kp's status is the one this controller last wrote to it.
func (o *ownStatuses) mine(kp *v1alpha1.KuryrPod) bool {
	want, ok := o.m.Load(kp.UID)
	if !ok {
		return false
	}
	d, ok := digestOf(&kp.Status)
	return ok && d == want.(statusDigest)
}

// forget drops the record of the KuryrPod with uid (released).
func (o *ownStatuses) forget(uid types.UID) {
	o.m.Delete(uid)
}

// writtenTTL bounds how long a status this controller wrote stands in for
// the cache's older copy: the informer brings the write within
// milliseconds.
const writtenTTL = 5 * time.Second

// writtenStatuses remembers the KuryrPods whose status this controller
// has just written, until the informer's cache shows the write. A pod is
// often reconciled again at once (its own events during the reconcile
// that wired it): read from the cache, its KuryrPod is still the version
// before the write, whose status then differs from the one computed, and
// the write that follows fails with a conflict and waits for the work
// queue's backoff (100 ms and more) instead of the poll.
type writtenStatuses struct {
	mu sync.Mutex
	m  map[types.NamespacedName]writtenStatus
}

type writtenStatus struct {
	before string // the resource version the write replaced
	kp     *v1alpha1.KuryrPod
	at     time.Time
}

// put records kp as written over version before; entries past writtenTTL
// go.
func (w *writtenStatuses) put(before string, kp *v1alpha1.KuryrPod, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[types.NamespacedName]writtenStatus{}
	}
	for k, e := range w.m {
		if now.Sub(e.at) > writtenTTL {
			delete(w.m, k)
		}
	}
	w.m[types.NamespacedName{Namespace: kp.Namespace, Name: kp.Name}] = writtenStatus{before: before, kp: kp.DeepCopy(), at: now}
}

// fresher returns the KuryrPod this controller wrote when cached is still
// the version that write replaced (same object); else cached, and the
// record goes (the cache has caught up, or someone else wrote since).
func (w *writtenStatuses) fresher(cached *v1alpha1.KuryrPod, now time.Time) *v1alpha1.KuryrPod {
	key := types.NamespacedName{Namespace: cached.Namespace, Name: cached.Name}
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.m[key]
	if !ok {
		return cached
	}
	if e.kp.UID == cached.UID && e.before == cached.ResourceVersion && now.Sub(e.at) <= writtenTTL {
		return e.kp.DeepCopy()
	}
	delete(w.m, key)
	return cached
}

// forget drops the record of KuryrPod key.
func (w *writtenStatuses) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, key)
}

// wireAll brings a planned pod's interfaces to ACTIVE: it resolves the
// node, creates and wires every interface not ACTIVE yet at once, computes
// the status from the results (podStatus), writes it once and acts on the
// outcome.
//
// newKP says the KuryrPod was made by this very reconcile: no port of the
// pod can exist yet, so none is looked up.
//
// policyMsg, when not empty, is the tenant policy's decision just made
// (enforcePolicy): recorded as PolicyAllowed=True with this status.
func (r *PodReconciler) wireAll(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod, newKP bool, policyMsg string) (ctrl.Result, error) {
	obs := observation{
		prev: kp.Status, generation: kp.Generation, planned: len(kp.Spec.Interfaces),
		activeTimeout: r.opts.ActiveTimeout.Duration,
	}
	info, err := r.nodeOf(ctx, pod)
	switch {
	case errors.Is(err, errNodeNotReady) || isTerminal(err):
		obs.nodeErr = err
	case err != nil:
		return ctrl.Result{}, err
	default:
		obs.entries, obs.errs, err = r.fanOut(ctx, pod, kp, info, newKP)
		if err != nil {
			r.waits.forget(pod.UID)
			return ctrl.Result{}, err
		}
		switch {
		case dpdkBecomesActive(kp, obs.entries):
			if err := r.recordOwners(ctx, info); err != nil {
				return ctrl.Result{}, fmt.Errorf("record the DPDK devices of node %s before pod %s/%s's interfaces go ACTIVE: %w",
					info.Name, pod.Namespace, pod.Name, err)
			}
		case info.HotplugSlots > 0 && slices.ContainsFunc(kp.Spec.Interfaces, func(i v1alpha1.InterfaceRequest) bool {
			return i.Driver == v1alpha1.DriverNestedDPDK
		}):
			r.recordServer(ctx, info.ServerID)
		}
		waiting := slices.ContainsFunc(obs.entries, func(s v1alpha1.InterfaceStatus) bool { return s.State == v1alpha1.StatePending }) &&
			!slices.ContainsFunc(obs.errs, func(err error) bool { return err != nil })
		obs.waited = r.waits.waited(pod.UID, r.now(), waiting)
		obs.waiting = r.waits.count()
	}
	v := podStatus(obs)
	if policyMsg != "" {
		setCondition(&v.status, v1alpha1.ConditionPolicyAllowed, true, reasonPolicyAllowed, policyMsg, kp.Generation)
	}
	return r.apply(ctx, pod, kp, v)
}

// dpdkBecomesActive says whether entries, the new status of kp's
// interfaces in spec order, make a nested-dpdk interface bound on the CNI
// path (not a claim's device) ACTIVE that was not before.
func dpdkBecomesActive(kp *v1alpha1.KuryrPod, entries []v1alpha1.InterfaceStatus) bool {
	for i, req := range kp.Spec.Interfaces {
		if req.Driver != v1alpha1.DriverNestedDPDK || req.ResourceClaim != nil || i >= len(entries) || entries[i].State != v1alpha1.StateActive {
			continue
		}
		if prev := findStatus(&kp.Status, req.IfName); prev == nil || prev.State != v1alpha1.StateActive && prev.State != v1alpha1.StatePlugged {
			return true
		}
	}
	return false
}

// nodeOf resolves the pod's node to its VM in the cloud.
func (r *PodReconciler) nodeOf(ctx context.Context, pod *corev1.Pod) (nodeInfo, error) {
	var node corev1.Node
	if err := r.client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, &node); err != nil {
		return nodeInfo{}, fmt.Errorf("get node %s of pod %s/%s: %w", pod.Spec.NodeName, pod.Namespace, pod.Name, err)
	}
	info, fresh, err := r.nodes.resolve(ctx, &node)
	if err != nil {
		// Why a node is not ready names its server, ports and the worker
		// subnets: not the pod's own objects.
		err = private(fmt.Sprintf("node %s cannot carry interfaces yet (details in the controller's log)", node.Name), err)
	}
	limit, lerr := hotplugLimit(&node, r.opts.HotplugSlots)
	if lerr != nil {
		r.recorder.Eventf(&node, nil, corev1.EventTypeWarning, reasonBadSlots, "CountHotplugSlots", "%s", lerr.Error())
	}
	info.HotplugSlots = limit
	info.Pools = r.pools.nodePoolSizes(ctx, &node)
	if err == nil && fresh {
		// KuryrNode is a cache for people and tools: failing to write it
		// (a conflict with another pod of the node) does not hold the pod.
		if rerr := r.recordNode(ctx, &node, info); rerr != nil {
			log.FromContext(ctx).Info("KuryrNode not recorded", "node", node.Name, "reason", rerr.Error())
		}
	}
	return info, err
}

// fanOut looks every pending interface's port up first (at most one list),
// then creates and wires them all at once: a pod's ports do not wait for
// each other (with a real cloud a port create takes ~1 s and a Nova attach
// several). It returns each interface's status entry and error in spec
// order; interfaces already Active or Plugged keep their entry.
func (r *PodReconciler) fanOut(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod, node nodeInfo, newKP bool) ([]v1alpha1.InterfaceStatus, []error, error) {
	prev := kp.Status.DeepCopy()
	lookup := portLookup{r: r, uid: pod.UID, none: newKP}
	out := make([]v1alpha1.InterfaceStatus, len(kp.Spec.Interfaces))
	errs := make([]error, len(kp.Spec.Interfaces))
	var todo []func()
	for i, req := range kp.Spec.Interfaces {
		cur := findStatus(prev, req.IfName)
		if cur != nil && (cur.State == v1alpha1.StateActive || cur.State == v1alpha1.StatePlugged) {
			out[i] = *cur
			continue
		}
		entry := v1alpha1.InterfaceStatus{IfName: req.IfName, Driver: req.Driver, Network: req.Network, State: v1alpha1.StatePending}
		if cur != nil {
			entry = *cur
		}
		if req.ResourceClaim != nil {
			// A claim's device: no port of the pod's to look up.
			todo = append(todo, func() { out[i], errs[i] = r.wireClaimed(ctx, node, req, entry) })
			continue
		}
		existing, err := lookup.port(ctx, req.IfName, cur)
		if errors.Is(err, errNotOwned) {
			// Refused: the verdict rolls the pod back, and nothing
			// touches the port the status named.
			log.FromContext(ctx).Info("KuryrPod status names a port that is not the interface's", "pod", pod.UID, "ifName", req.IfName, "reason", err.Error())
			entry.Message = err.Error()
			out[i], errs[i] = entry, err
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		todo = append(todo, func() { out[i], errs[i] = r.wireOne(ctx, pod, node, req, existing, entry) })
	}
	var wg sync.WaitGroup
	for _, f := range todo {
		wg.Go(f)
	}
	wg.Wait()
	return out, errs, nil
}

// apply carries a verdict out: for a failure it first releases what the pod
// got (the pod stays without networks, its CNI ADD failing with the
// message, until it is recreated); then it writes the status, once, and
// requeues, counts and reports as the outcome says.
func (r *PodReconciler) apply(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod, v verdict) (ctrl.Result, error) {
	if v.outcome == outcomeFailed {
		if err := r.releasePod(ctx, pod.UID, false); err != nil {
			if errors.Is(err, errDetachPending) {
				return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
			}
			return ctrl.Result{}, fmt.Errorf("roll back pod %s/%s after %v: %w", pod.Namespace, pod.Name, v.cause, err)
		}
	}
	if err := r.writeStatus(ctx, kp, &v.status); err != nil && (v.outcome != outcomeFailed || !apierrors.IsNotFound(err)) {
		return ctrl.Result{}, err
	}
	switch v.outcome {
	case outcomeNodeNotReady:
		log.FromContext(ctx).V(1).Info("node not ready for the pod's interfaces", "pod", pod.Namespace+"/"+pod.Name, "reason", v.cause.Error())
		return ctrl.Result{RequeueAfter: v.requeueAfter}, nil
	case outcomeFailed:
		r.metrics.setWaiting(kp.Spec.PodUID, false)
		log.FromContext(ctx).Info("interfaces rolled back", "pod", pod.Namespace+"/"+pod.Name, "reason", v.cause.Error())
		r.recorder.Eventf(pod, kp, corev1.EventTypeWarning, reasonFailed, "WireInterfaces", "interfaces rolled back: %s", publicText(v.cause))
		return ctrl.Result{}, nil
	case outcomeRetry:
		// Returning the error requeues the pod with controller-runtime's
		// exponential backoff: no retry storm on a struggling cloud.
		return ctrl.Result{}, v.cause
	case outcomePending:
		r.metrics.setWaiting(kp.Spec.PodUID, true)
		return ctrl.Result{RequeueAfter: v.requeueAfter}, nil
	}
	r.metrics.setWaiting(kp.Spec.PodUID, false)
	if v.becameReady {
		r.metrics.podReady.Observe(r.now().Sub(pod.CreationTimestamp.Time).Seconds())
		r.recorder.Eventf(pod, kp, corev1.EventTypeNormal, reasonActive, "WireInterfaces", "%d interfaces ACTIVE in the cloud", len(v.status.Interfaces))
	}
	return ctrl.Result{}, nil
}
