package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
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

// specValid says the controller recorded a successful plan for kp.
func specValid(kp *v1alpha1.KuryrPod) bool {
	return meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionSpecValid)
}

func specInvalid(kp *v1alpha1.KuryrPod) bool {
	return meta.IsStatusConditionFalse(kp.Status.Conditions, v1alpha1.ConditionSpecValid)
}

func failed(kp *v1alpha1.KuryrPod) bool {
	c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonFailed
}

const (
	reasonFailed       = "InterfacesFailed"
	reasonPending      = "InterfacesPending"
	reasonActive       = "InterfacesActive"
	reasonNodeNotReady = "NodeNotReady"
)

func setCondition(st *v1alpha1.KuryrPodStatus, typ string, ok bool, reason, msg string, gen int64) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

func findStatus(st *v1alpha1.KuryrPodStatus, ifName string) *v1alpha1.InterfaceStatus {
	for i := range st.Interfaces {
		if st.Interfaces[i].IfName == ifName {
			return &st.Interfaces[i]
		}
	}
	return nil
}

// writeStatus writes st as kp's status if it changed, with the resource
// version check (a conflict is retried by the caller's requeue).
func (r *PodReconciler) writeStatus(ctx context.Context, kp *v1alpha1.KuryrPod, st *v1alpha1.KuryrPodStatus) error {
	st.ObservedGeneration = kp.Generation
	if equality.Semantic.DeepEqual(&kp.Status, st) {
		return nil
	}
	kp.Status = *st
	if err := r.client.Status().Update(ctx, kp); err != nil {
		return fmt.Errorf("update status of KuryrPod %s/%s: %w", kp.Namespace, kp.Name, err)
	}
	return nil
}

// wireAll creates and wires each interface that is not ACTIVE yet, then
// records the result once.
//
// newKP says the KuryrPod was made by this very reconcile: no port of the
// pod can exist yet, so none is looked up.
func (r *PodReconciler) wireAll(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod, newKP bool) (ctrl.Result, error) {
	st := kp.Status.DeepCopy()
	setCondition(st, v1alpha1.ConditionSpecValid, true, "Planned", fmt.Sprintf("%d interfaces", len(kp.Spec.Interfaces)), kp.Generation)

	var node corev1.Node
	if err := r.client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, &node); err != nil {
		return ctrl.Result{}, fmt.Errorf("get node %s of pod %s/%s: %w", pod.Spec.NodeName, pod.Namespace, pod.Name, err)
	}
	info, fresh, err := r.nodes.resolve(ctx, &node)
	if err == nil && fresh {
		// KuryrNode is a cache for people and tools: failing to write it
		// (a conflict with another pod of the node) does not hold the pod.
		if rerr := r.recordNode(ctx, &node, info); rerr != nil {
			log.FromContext(ctx).Info("KuryrNode not recorded", "node", node.Name, "reason", rerr.Error())
		}
	}
	if err != nil {
		if errors.Is(err, errNodeNotReady) || isTerminal(err) {
			setCondition(st, v1alpha1.ConditionReady, false, reasonNodeNotReady, err.Error(), kp.Generation)
			st.Summary = reasonNodeNotReady
			return ctrl.Result{RequeueAfter: 15 * time.Second}, r.writeStatus(ctx, kp, st)
		}
		return ctrl.Result{}, err
	}

	// Look every pending interface's port up first (at most one list), then
	// create and wire them all at once: a pod's ports do not wait for each
	// other (with a real cloud a port create takes ~1 s and a Nova attach
	// several).
	lookup := portLookup{r: r, uid: pod.UID, none: newKP}
	out := make([]v1alpha1.InterfaceStatus, len(kp.Spec.Interfaces))
	errs := make([]error, len(kp.Spec.Interfaces))
	var wg sync.WaitGroup
	for i, req := range kp.Spec.Interfaces {
		cur := findStatus(st, req.IfName)
		if cur != nil && (cur.State == v1alpha1.StateActive || cur.State == v1alpha1.StatePlugged) {
			out[i] = *cur
			continue
		}
		existing, err := lookup.port(ctx, req.IfName, cur)
		if err != nil {
			return ctrl.Result{}, err
		}
		entry := v1alpha1.InterfaceStatus{IfName: req.IfName, Driver: req.Driver, Network: req.Network, State: v1alpha1.StatePending}
		if cur != nil {
			entry = *cur
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = r.wireOne(ctx, pod, info, req, existing, entry)
		}()
	}
	wg.Wait()
	var transient []error
	var fatal error
	pending := 0
	for i, err := range errs {
		ifName := kp.Spec.Interfaces[i].IfName
		switch {
		case err == nil:
		case isTerminal(err):
			fatal = fmt.Errorf("interface %s: %w", ifName, err)
		default:
			transient = append(transient, fmt.Errorf("interface %s: %w", ifName, err))
		}
		if out[i].State == v1alpha1.StatePending {
			pending++
		}
	}
	st.Interfaces = out

	if fatal == nil && pending > 0 && r.now().Sub(kp.CreationTimestamp.Time) > r.opts.ActiveTimeout.Duration {
		fatal = fmt.Errorf("%d interfaces not ACTIVE after %s (activeTimeout)", pending, r.opts.ActiveTimeout.Duration)
	}
	if fatal != nil {
		return r.rollback(ctx, pod, kp, st, fatal)
	}
	active := len(out) - pending
	st.Summary = fmt.Sprintf("%d/%d active", active, len(out))
	switch {
	case len(transient) > 0:
		setCondition(st, v1alpha1.ConditionReady, false, reasonPending, errors.Join(transient...).Error(), kp.Generation)
		if err := r.writeStatus(ctx, kp, st); err != nil {
			return ctrl.Result{}, err
		}
		// Returning the error requeues the pod with controller-runtime's
		// exponential backoff: no retry storm on a struggling cloud.
		return ctrl.Result{}, errors.Join(transient...)
	case pending > 0:
		r.metrics.setWaiting(kp.Spec.PodUID, true)
		setCondition(st, v1alpha1.ConditionReady, false, reasonPending, fmt.Sprintf("%d of %d interfaces not ACTIVE yet", pending, len(out)), kp.Generation)
		return ctrl.Result{RequeueAfter: pollDelay(r.now().Sub(kp.CreationTimestamp.Time))}, r.writeStatus(ctx, kp, st)
	}
	r.metrics.setWaiting(kp.Spec.PodUID, false)
	wasReady := meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady)
	setCondition(st, v1alpha1.ConditionReady, true, reasonActive, fmt.Sprintf("%d interfaces ACTIVE", len(out)), kp.Generation)
	if err := r.writeStatus(ctx, kp, st); err != nil {
		return ctrl.Result{}, err
	}
	if !wasReady {
		r.metrics.podReady.Observe(r.now().Sub(pod.CreationTimestamp.Time).Seconds())
		r.recorder.Eventf(pod, kp, corev1.EventTypeNormal, reasonActive, "WireInterfaces", "%d interfaces ACTIVE in the cloud", len(out))
	}
	return ctrl.Result{}, nil
}

// wireOne creates (unless it exists) and wires one interface's port and
// returns its status entry, starting from entry.
func (r *PodReconciler) wireOne(ctx context.Context, pod *corev1.Pod, info nodeInfo, req v1alpha1.InterfaceRequest,
	existing *openstack.Port, entry v1alpha1.InterfaceStatus) (v1alpha1.InterfaceStatus, error) {
	port, err := r.ensurePort(ctx, pod, info, req, existing)
	if err != nil {
		entry.Message = err.Error()
		return entry, err
	}
	w, err := r.wire(ctx, info, req, port)
	if err != nil {
		entry.PortID, entry.Message = port.ID, err.Error()
		return entry, err
	}
	entry, err = r.describe(ctx, req, w)
	entry.State, entry.Message = v1alpha1.StatePending, "waiting for the port to become ACTIVE"
	if w.active {
		entry.State, entry.Message = v1alpha1.StateActive, ""
	}
	if err != nil {
		entry.Message = err.Error()
	}
	return entry, err
}

// pollDelay paces the wait for ACTIVE: quick at first (Neutron usually
// answers within a second), slower as the wait drags on.
func pollDelay(elapsed time.Duration) time.Duration {
	d := 100*time.Millisecond + elapsed/10
	return min(d, 2*time.Second)
}

// rollback releases everything the pod got after a terminal failure and
// records why: the pod stays without networks (its CNI ADD fails with the
// message) until it is recreated.
func (r *PodReconciler) rollback(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod, st *v1alpha1.KuryrPodStatus, cause error) (ctrl.Result, error) {
	if err := r.releasePod(ctx, pod.UID); err != nil {
		if errors.Is(err, errDetachPending) {
			return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
		}
		return ctrl.Result{}, fmt.Errorf("roll back pod %s/%s after %v: %w", pod.Namespace, pod.Name, cause, err)
	}
	for i := range st.Interfaces {
		s := &st.Interfaces[i]
		s.State = v1alpha1.StateFailed
		if s.Message == "" {
			s.Message = "rolled back: " + cause.Error()
		}
		s.PortID, s.VLANID = "", 0
	}
	r.metrics.setWaiting(kp.Spec.PodUID, false)
	setCondition(st, v1alpha1.ConditionReady, false, reasonFailed, cause.Error(), kp.Generation)
	st.Summary = reasonFailed
	r.recorder.Eventf(pod, kp, corev1.EventTypeWarning, reasonFailed, "WireInterfaces", "interfaces rolled back: %s", cause.Error())
	if err := r.writeStatus(ctx, kp, st); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}
