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
// is recorded as the controller's own (ownWrites) before it is sent: its
// watch event may come before the answer.
func (r *PodReconciler) writeStatus(ctx context.Context, kp *v1alpha1.KuryrPod, st *v1alpha1.KuryrPodStatus) error {
	st.ObservedGeneration = kp.Generation
	if equality.Semantic.DeepEqual(&kp.Status, st) {
		return nil
	}
	before := kp.ResourceVersion
	kp.Status = *st
	undo := r.own.sending(kp.UID, st)
	if err := r.client.Status().Update(ctx, kp); err != nil {
		undo()
		return fmt.Errorf("update status of KuryrPod %s/%s: %w", kp.Namespace, kp.Name, err)
	}
	r.own.written(before, kp, r.now())
	return nil
}

// writtenTTL bounds how long a status this controller wrote stands in for
// the cache's older copy: the informer brings the write within
// milliseconds.
const writtenTTL = 5 * time.Second

// ownWrites remembers, per KuryrPod (by UID), the status this controller
// last wrote to it, for two readers:
//   - The KuryrPod watch (othersChanges) tells the controller's own writes,
//     which need no reconcile (its polls are scheduled), from anyone
//     else's: the daemon's, or a forged one, which the controller must see
//     at once. It compares a SHA-256 digest of the status, kept while the
//     KuryrPod lives: the watch may bring the write before its answer, so
//     the digest is recorded before the write is sent; SHA-256, so that no
//     one can craft a status that passes for the controller's.
//   - A reconcile (fresher): a pod is often reconciled again at once (its
//     own events during the reconcile that wired it), and read from the
//     cache its KuryrPod is still the version before the write, whose
//     status then differs from the one computed: the write that follows
//     failed with a conflict and waited for the work queue's backoff
//     (100 ms and more) instead of the poll. The written object stands in
//     for the cache's copy until the cache shows the write, at most
//     writtenTTL.
type ownWrites struct {
	mu sync.Mutex
	m  map[types.UID]*ownWrite
	// swept is when written last dropped the copies past writtenTTL: it
	// walks the map (one entry per live KuryrPod) at most once per
	// writtenTTL, not on every write.
	swept time.Time
}

type ownWrite struct {
	digest statusDigest
	// kp is the KuryrPod as written over resource version before, at;
	// nil once the cache showed the write.
	kp     *v1alpha1.KuryrPod
	before string
	at     time.Time
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

// sending records st as the status about to be written to the KuryrPod
// with uid. undo puts the previous record back, for a write that failed.
func (o *ownWrites) sending(uid types.UID, st *v1alpha1.KuryrPodStatus) (undo func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[types.UID]*ownWrite{}
	}
	prev, had := o.m[uid]
	if d, ok := digestOf(st); ok {
		w := &ownWrite{digest: d}
		if had {
			w.kp, w.before, w.at = prev.kp, prev.before, prev.at
		}
		o.m[uid] = w
	} else {
		delete(o.m, uid)
	}
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if had {
			o.m[uid] = prev
		} else {
			delete(o.m, uid)
		}
	}
}

// written records kp as written over resource version before, to stand in
// for the cache's older copy (fresher), trimmed as the cache trims its
// copies (no managedFields: the API server's answer carries them, and at
// a thousand pods they were most of what these copies held). Written
// copies past writtenTTL go
// (their digests stay): by the first write at least writtenTTL after the
// last sweep, so a copy is held at most twice writtenTTL, and fresher
// never returns one past writtenTTL.
func (o *ownWrites) written(before string, kp *v1alpha1.KuryrPod, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if now.Sub(o.swept) >= writtenTTL {
		o.swept = now
		for _, w := range o.m {
			if w.kp != nil && now.Sub(w.at) > writtenTTL {
				w.kp = nil
			}
		}
	}
	if w := o.m[kp.UID]; w != nil {
		c := kp.DeepCopy()
		_, _ = trimForCache(c)
		w.kp, w.before, w.at = c, before, now
	}
}

// mine says whether kp's status is the one this controller last wrote to it.
func (o *ownWrites) mine(kp *v1alpha1.KuryrPod) bool {
	d, ok := digestOf(&kp.Status)
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.m[kp.UID]
	return ok && w != nil && w.digest == d
}

// fresher returns the KuryrPod this controller wrote when cached is still
// the version that write replaced (same object, within writtenTTL); else
// cached, and the written copy goes (the cache has caught up, or someone
// else wrote since).
func (o *ownWrites) fresher(cached *v1alpha1.KuryrPod, now time.Time) *v1alpha1.KuryrPod {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.m[cached.UID]
	if w == nil || w.kp == nil {
		return cached
	}
	if w.before == cached.ResourceVersion && now.Sub(w.at) <= writtenTTL {
		return w.kp.DeepCopy()
	}
	w.kp = nil
	return cached
}

// forget drops the record of the KuryrPod with uid (released).
func (o *ownWrites) forget(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, uid)
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
	read := r.nodes.read()
	var node corev1.Node
	if err := r.client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, &node); err != nil {
		return nodeInfo{}, fmt.Errorf("get node %s of pod %s/%s: %w", pod.Spec.NodeName, pod.Namespace, pod.Name, err)
	}
	info, fresh, err := r.nodes.resolve(ctx, &node, read)
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
		if rerr := r.recordNode(ctx, info); rerr != nil {
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
			r.created.settled(pod.UID, req.IfName)
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
