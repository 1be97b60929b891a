package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/networks"
)

// PodReconciler gives pods their interfaces. One reconcile handles one pod
// (and its KuryrPod, which has the same name): it plans, creates and wires
// the cloud resources, records them, and releases them when the pod goes.
type PodReconciler struct {
	client   client.Client
	cloud    Cloud
	recorder recorder.EventRecorder
	opts     Options
	nodes    *nodes
	drivers  drivers
	nets     *netCache
	metrics  *metrics
	created  createdPorts
	creates  *portCreates
	waits    waitClock
	pools    *pools
	slots    *hotplugSlots
	// attached records the pods' own nested-dpdk ports by node VM
	// (KuryrNode status.dpdkDevices).
	attached *attachedPorts
	// own holds the KuryrPod statuses this controller wrote: its watch
	// tells them from others', and a reconcile reads them while the cache
	// has not caught up.
	own ownWrites
	// nodeWrites holds a *sync.Mutex per node name: its KuryrNode is
	// written by one recordNode at a time. nodeCopies holds the
	// *KuryrNode each last wrote.
	nodeWrites, nodeCopies sync.Map
	now                    func() time.Time
	// identified is closed once opts.ClusterUID is known: given, or read
	// by readIdentity. Everything that names the cluster's ports waits
	// for it (waitIdentity).
	identified chan struct{}
}

// NewPodReconciler builds the reconciler. reg may be nil (no metrics).
func NewPodReconciler(c client.Client, cloud Cloud, rec recorder.EventRecorder, opts Options, reg prometheus.Registerer) *PodReconciler {
	cloud = retryingCloud{limitWrites(cloud, opts.MaxCloudWrites)}
	m := newMetrics(reg)
	ns := newNodes(cloud, opts.WorkerSubnetIDs)
	slots := newHotplugSlots(cloud)
	attached := newAttachedPorts()
	r := &PodReconciler{
		client: c, cloud: cloud, recorder: rec, opts: opts,
		nodes: ns, drivers: newDrivers(cloud, ns, slots, attached, m), nets: newNetCache(cloud),
		metrics: m, creates: newPortCreates(cloud), slots: slots, attached: attached, now: time.Now,
		identified: make(chan struct{}),
	}
	if opts.ClusterUID != "" {
		close(r.identified)
	}
	r.pools = newPools(r)
	return r
}

// cluster is the identity this controller's ports carry; call it after
// waitIdentity.
func (r *PodReconciler) cluster() clusterIdentity {
	return clusterIdentity{name: r.opts.ClusterID, uid: r.opts.ClusterUID}
}

// ReadClusterUID returns the UID of the kube-system namespace: made with the
// cluster and never recreated, it is what no other cluster shares.
func ReadClusterUID(ctx context.Context, c client.Reader) (string, error) {
	var ns corev1.Namespace
	if err := c.Get(ctx, types.NamespacedName{Name: metav1.NamespaceSystem}, &ns); err != nil {
		return "", fmt.Errorf("read namespace %s, whose UID identifies the cluster's ports: %w", metav1.NamespaceSystem, err)
	}
	if ns.UID == "" {
		return "", fmt.Errorf("namespace %s has no UID", metav1.NamespaceSystem)
	}
	return string(ns.UID), nil
}

// identityRetry bounds the wait between two attempts of readIdentity.
const identityRetry = 5 * time.Second

// readIdentity reads the cluster's UID (ReadClusterUID) from c until it
// succeeds or ctx ends, then lets everything waiting for it go on
// (waitIdentity). It runs in the manager, once the controller leads: a
// controller started while the API server is unreachable (restarted by its
// kubelet during an outage, after losing its lease) waits here, serving
// its health probes, instead of exiting into the kubelet's crash-loop
// backoff, which would keep it down for minutes after the API server is
// back. A refusal (403) is retried too: a kube-apiserver that has just
// started answers some for under a second, before its RBAC caches fill;
// one that lasts is a missing permission, logged as an error each time.
func (r *PodReconciler) readIdentity(ctx context.Context, c client.Reader) error {
	logger := log.FromContext(ctx).WithName("identity")
	delay := 100 * time.Millisecond
	for {
		uid, err := ReadClusterUID(ctx, c)
		switch {
		case err == nil:
			r.opts.ClusterUID = uid
			close(r.identified)
			return nil
		case ctx.Err() != nil:
			return nil
		case apierrors.IsForbidden(err):
			logger.Error(err, "Refused the cluster's UID: nothing is reconciled until kuryr-controller may get namespace kube-system (deploy/kuryr-dpdk/rbac.yaml)", "retryIn", delay)
		default:
			logger.Info("Kubernetes API server not answering yet: the cluster's UID is not known, nothing is reconciled", "reason", err.Error(), "retryIn", delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, identityRetry)
	}
}

// waitIdentity waits until the cluster's UID is known.
func (r *PodReconciler) waitIdentity(ctx context.Context) error {
	select {
	case <-r.identified:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the cluster's UID is not known yet: %w", ctx.Err())
	}
}

// podDone says the pod has finished for good: none of its containers will
// run again, so its interfaces can go (as for a completed Job's pod).
func podDone(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// wants says whether the controller handles pod at all.
func (r *PodReconciler) wants(pod *corev1.Pod) bool {
	if pod.Spec.NodeName == "" || pod.Spec.HostNetwork {
		return false
	}
	if r.opts.Primary {
		return true
	}
	return pod.Annotations[v1alpha1.NetworksAnnotation] != ""
}

// Reconcile implements reconcile.Reconciler.
func (r *PodReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if err := r.waitIdentity(ctx); err != nil {
		return ctrl.Result{}, err
	}
	var pod *corev1.Pod
	p := &corev1.Pod{}
	if err := r.client.Get(ctx, req.NamespacedName, p); err == nil {
		pod = p
	} else if !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("get pod %s: %w", req, err)
	}
	var kp *v1alpha1.KuryrPod
	k := &v1alpha1.KuryrPod{}
	if err := r.client.Get(ctx, req.NamespacedName, k); err == nil {
		kp = r.own.fresher(k, r.now())
	} else if !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("get KuryrPod %s: %w", req, err)
	}

	switch {
	case pod == nil && kp == nil:
		return ctrl.Result{}, nil
	case pod == nil:
		// Gone, force-deleted included: nothing waits for an unplug any more.
		return r.release(ctx, nil, kp)
	case kp != nil && kp.Spec.PodUID != pod.UID:
		// The name now belongs to a new pod: release the old one's first.
		if res, err := r.release(ctx, nil, kp); err != nil || !res.IsZero() {
			return res, err
		}
		return ctrl.Result{RequeueAfter: 10 * time.Millisecond}, nil
	case pod.DeletionTimestamp != nil || podDone(pod):
		// Going, or finished for good (its sandbox is gone): release.
		if kp == nil && !controllerutil.ContainsFinalizer(pod, v1alpha1.Finalizer) {
			return ctrl.Result{}, nil
		}
		return r.release(ctx, pod, kp)
	case !r.wants(pod):
		return ctrl.Result{}, nil
	}
	return r.ensure(ctx, pod, kp)
}

// setPodFinalizer adds (add) or removes kuryr-dpdk's finalizer of pod with
// a strategic merge patch, in which a Pod's finalizers merge by value: the
// patch names only ours, so finalizers that other controllers wrote after
// the cached copy a reconcile read are kept. (A JSON merge patch computed
// from that copy, client.MergeFrom, sends the whole list and drops them.)
// pod is updated from the API server's answer.
func (r *PodReconciler) setPodFinalizer(ctx context.Context, pod *corev1.Pod, add bool) error {
	key := "finalizers"
	if !add {
		key = "$deleteFromPrimitiveList/finalizers"
	}
	patch := `{"metadata":{"` + key + `":["` + v1alpha1.Finalizer + `"]}}`
	return r.client.Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, []byte(patch)))
}

// ensure brings a live pod's interfaces to ACTIVE.
func (r *PodReconciler) ensure(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(pod, v1alpha1.Finalizer) {
		if err := r.setPodFinalizer(ctx, pod, true); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	newKP := kp == nil
	if kp == nil || !specValid(kp) {
		// No KuryrPod yet, or its request was invalid (a NAD may have come
		// since), or it was made but its plan never recorded (a conflict or
		// a crash right after creation): plan (again).
		var res ctrl.Result
		var err error
		kp, res, err = r.plan(ctx, pod, kp)
		if kp == nil || err != nil || !res.IsZero() {
			return res, err
		}
	}
	if failed(kp) {
		// Rolled back after a terminal error, or refused by a tenant
		// policy: wait for the pod to be recreated.
		return ctrl.Result{}, nil
	}
	policyMsg := ""
	if !policyDecided(kp) {
		// Before any cloud call: a refused pod costs the cloud nothing.
		var refused bool
		var err error
		if policyMsg, refused, err = r.enforcePolicy(ctx, pod, kp); err != nil || refused {
			return ctrl.Result{}, err
		}
	}
	if wait := r.waits.untilFirstPoll(pod.UID, r.now()); wait > 0 && !newKP && policyMsg == "" {
		// Wired moments ago, and woken again at once by its own events
		// (the finalizer, the status write): its first poll is scheduled,
		// a read now would cost Neutron a call for nothing.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	return r.wireAll(ctx, pod, kp, newKP, policyMsg)
}

// plan works out the pod's interfaces and creates (or fixes) its KuryrPod.
// A request that cannot be understood is recorded as SpecValid=False with an
// Event and is not retried until the pod or a NAD changes.
func (r *PodReconciler) plan(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod) (*v1alpha1.KuryrPod, ctrl.Result, error) {
	var read []string // the NADs the plan read, namespace/name, in order
	get := func(ctx context.Context, namespace, name string) (networks.NAD, error) {
		read = append(read, namespace+"/"+name)
		return r.getNAD(ctx, namespace, name)
	}
	reqs, planErr := networks.Plan(ctx, pod, get, networks.Defaults{
		Primary: r.opts.Primary, Driver: r.opts.DefaultDriver, SubnetID: r.opts.PodSubnetID,
		SecurityGroups: r.opts.PodSecurityGroups, DPDKDriver: r.opts.DefaultDPDKDriver,
		AllowCrossNamespace: r.opts.AllowCrossNamespaceNetworks,
	})
	var cniPath []int
	claimErr := false
	if planErr == nil {
		// Nested-dpdk interfaces of a pod that holds claims of the DRA
		// driver are those claims' devices.
		var err error
		cniPath, err = r.claimInterfaces(ctx, pod, reqs)
		switch {
		case errors.Is(err, errClaimWait):
			log.FromContext(ctx).V(1).Info("plan waits for the pod's claims", "pod", pod.Namespace+"/"+pod.Name, "reason", err.Error())
			return nil, ctrl.Result{RequeueAfter: time.Second}, nil
		case networks.IsSpecError(err):
			planErr, claimErr = err, true
		case err != nil:
			return nil, ctrl.Result{}, err
		}
	}
	userError := networks.IsSpecError(planErr) || errors.Is(planErr, networks.ErrNADNotFound)
	if planErr != nil && !userError {
		return nil, ctrl.Result{}, planErr
	}
	if kp == nil {
		kp = newKuryrPod(pod)
		if planErr == nil {
			kp.Spec.Interfaces = reqs
		}
		if err := r.client.Create(ctx, kp); err != nil {
			return nil, ctrl.Result{}, fmt.Errorf("create KuryrPod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if planErr == nil {
			r.reportUnchecked(pod, kp, reqs, cniPath)
		}
	} else if planErr == nil && !equality.Semantic.DeepEqual(kp.Spec.Interfaces, reqs) {
		kp.Spec.Interfaces = reqs
		if err := r.client.Update(ctx, kp); err != nil {
			return nil, ctrl.Result{}, fmt.Errorf("update KuryrPod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	if planErr != nil {
		reason := "InvalidNetworkRequest"
		switch {
		case errors.Is(planErr, networks.ErrNADNotFound):
			reason = "NetworkNotFound"
		case claimErr:
			reason = reasonInvalidClaim
		}
		r.recorder.Eventf(pod, kp, corev1.EventTypeWarning, reason, "PlanInterfaces", "%s", planErr.Error())
		st := kp.Status.DeepCopy()
		setCondition(st, v1alpha1.ConditionSpecValid, false, reason, planErr.Error(), kp.Generation)
		setCondition(st, v1alpha1.ConditionReady, false, reason, "the pod's network request is not valid: see SpecValid", kp.Generation)
		st.Summary = reason
		st.WaitingForNetworks = waitingFor(planErr, read)
		return nil, ctrl.Result{}, r.writeStatus(ctx, kp, st)
	}
	return kp, ctrl.Result{}, nil
}

// waitingFor names the NADs whose creation or change can fix a failed plan:
// the one it stopped at, when it is missing or invalid. read lists the NADs
// the plan read, in order; it stops at the first failure, so the last one
// read is the one the failure is about, if any.
func waitingFor(planErr error, read []string) []string {
	if planErr == nil || len(read) == 0 {
		return nil
	}
	last := read[len(read)-1]
	var se *networks.SpecError
	if errors.Is(planErr, networks.ErrNADNotFound) ||
		errors.As(planErr, &se) && se.Object == "NetworkAttachmentDefinition "+last {
		return []string{last}
	}
	return nil
}

func (r *PodReconciler) getNAD(ctx context.Context, namespace, name string) (networks.NAD, error) {
	var nad nadv1.NetworkAttachmentDefinition
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &nad); err != nil {
		if apierrors.IsNotFound(err) {
			return networks.NAD{}, fmt.Errorf("NetworkAttachmentDefinition %s/%s does not exist: %w", namespace, name, networks.ErrNADNotFound)
		}
		return networks.NAD{}, err
	}
	return networks.NAD{Annotations: nad.Annotations, Config: nad.Spec.Config}, nil
}

// release frees the pod's cloud resources and lets the pod and its
// KuryrPod go. pod is nil when it no longer exists (or is another pod now).
func (r *PodReconciler) release(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	if pod != nil && kp != nil {
		if wait := r.unplugWait(ctx, pod, kp); wait > 0 {
			// The daemon still has interfaces in the pod: its DEL will
			// update the KuryrPod and wake us up; the wait is the bound.
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	uid := types.UID("")
	switch {
	case kp != nil:
		uid = kp.Spec.PodUID
	case pod != nil:
		uid = pod.UID
	}
	if uid != "" {
		r.metrics.setWaiting(uid, false)
		r.waits.forget(uid)
		// A pooled port goes back to its pool only once the daemon has
		// unplugged it (not when the grace ran out, nor for a pod whose
		// KuryrPod is gone and with it the record of what is plugged).
		recycle := kp != nil && plugged(kp) == ""
		if err := r.releasePod(ctx, uid, recycle); err != nil {
			switch {
			case r.releaseOverdue(pod, kp):
				// The cloud has not let go for releaseTimeout: the pod
				// goes, its ports stay tagged for the garbage collector.
				logger.Info("release overdue: finalizers dropped, ports left to the garbage collector", "pod", uid, "reason", err.Error())
				if obj := releaseSubject(pod, kp); obj != nil {
					r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, "ReleaseDeferred", "ReleaseInterfaces",
						"the cloud did not release the pod's ports within %s; the garbage collector will", r.opts.ReleaseTimeout.Duration)
				}
			case errors.Is(err, errDetachPending):
				logger.V(1).Info("waiting for Nova to detach", "pod", uid, "reason", err.Error())
				return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
			default:
				return ctrl.Result{}, err
			}
		}
	}
	if kp != nil {
		r.own.forget(kp.UID)
		if controllerutil.ContainsFinalizer(kp, v1alpha1.Finalizer) {
			patch := client.MergeFrom(kp.DeepCopy())
			controllerutil.RemoveFinalizer(kp, v1alpha1.Finalizer)
			if err := r.client.Patch(ctx, kp, patch); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("remove finalizer of KuryrPod %s/%s: %w", kp.Namespace, kp.Name, err)
			}
		}
		if kp.DeletionTimestamp == nil {
			if err := r.client.Delete(ctx, kp, client.Preconditions{UID: &kp.UID}); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("delete KuryrPod %s/%s: %w", kp.Namespace, kp.Name, err)
			}
		}
	}
	if pod != nil && controllerutil.ContainsFinalizer(pod, v1alpha1.Finalizer) {
		if err := r.setPodFinalizer(ctx, pod, false); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("remove finalizer of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	logger.V(1).Info("released pod's interfaces", "pod", uid)
	return ctrl.Result{}, nil
}

// releaseOverdue says the release of a deleted pod (or of a KuryrPod whose
// pod is gone) has waited releaseTimeout since the deletion.
func (r *PodReconciler) releaseOverdue(pod *corev1.Pod, kp *v1alpha1.KuryrPod) bool {
	var since *metav1.Time
	switch {
	case pod != nil:
		since = pod.DeletionTimestamp
	case kp != nil:
		since = kp.DeletionTimestamp
	}
	return since != nil && r.now().Sub(since.Time) > r.opts.ReleaseTimeout.Duration
}

// releaseSubject is the object a release's Events are about.
func releaseSubject(pod *corev1.Pod, kp *v1alpha1.KuryrPod) runtime.Object {
	if pod != nil {
		return pod
	}
	if kp != nil {
		return kp
	}
	return nil
}

// unplugWait is how long to wait for the daemon to unplug a deleted pod's
// interfaces before releasing them anyway (0: release now). A pod whose
// Node is gone (its VM deleted) waits for nothing: no daemon is left to
// unplug it.
func (r *PodReconciler) unplugWait(ctx context.Context, pod *corev1.Pod, kp *v1alpha1.KuryrPod) time.Duration {
	plugged := false
	for _, s := range kp.Status.Interfaces {
		if s.State == v1alpha1.StatePlugged {
			plugged = true
		}
	}
	if !plugged || pod.DeletionTimestamp == nil {
		return 0
	}
	if err := r.client.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, &corev1.Node{}); apierrors.IsNotFound(err) {
		return 0
	}
	deadline := pod.DeletionTimestamp.Add(r.opts.ReleaseGrace.Duration)
	if wait := deadline.Sub(r.now()); wait > 0 {
		return wait
	}
	return 0
}
