package controller

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

const (
	reasonFailed       = "InterfacesFailed"
	reasonPending      = "InterfacesPending"
	reasonActive       = "InterfacesActive"
	reasonPoolFill     = "PoolNotFilled"
	reasonNoSlot       = "NoHotplugSlot"
	reasonBadSlots     = "InvalidHotplugSlots"
	reasonNodeNotReady = "NodeNotReady"
	reasonPlanned      = "Planned"
)

// nodeNotReadyDelay paces the retries of a pod whose node cannot carry
// interfaces yet.
const nodeNotReadyDelay = 15 * time.Second

// outcome is what one reconcile concluded about a pod's interfaces, and so
// what the reconciler does after writing the status.
type outcome int

const (
	// outcomeReady: every interface is ACTIVE.
	outcomeReady outcome = iota
	// outcomePending: no error, some interface not ACTIVE yet: poll again.
	outcomePending
	// outcomeRetry: an interface met an error worth retrying: requeue with
	// the work queue's backoff.
	outcomeRetry
	// outcomeFailed: a terminal error, or an interface not ACTIVE within
	// activeTimeout: everything the pod got is rolled back.
	outcomeFailed
	// outcomeNodeNotReady: the node cannot be resolved to its VM yet.
	outcomeNodeNotReady
)

// observation is what one reconcile saw of a pod's interfaces: the input of
// podStatus.
type observation struct {
	// prev is the KuryrPod's status as read, generation its spec's.
	prev       v1alpha1.KuryrPodStatus
	generation int64
	// planned is how many interfaces the spec asks for.
	planned int
	// nodeErr is set when the node could not be resolved (not ready, or a
	// terminal answer); then no interface was looked at.
	nodeErr error
	// entries and errs are each interface's status and error, in spec order.
	entries []v1alpha1.InterfaceStatus
	errs    []error
	// waited is how long the pod's interfaces have been waiting for ACTIVE
	// with every call answered (waitClock): the active timeout counts
	// from the step that waits, not from the KuryrPod's creation, so a
	// cloud that did not answer for a while (retried with backoff) does
	// not fail the pod once it answers again. It paces the polls too.
	waited        time.Duration
	activeTimeout time.Duration
	// waiting is how many pods wait for ACTIVE now, this one included
	// (waitClock): their polls share one budget.
	waiting int
}

// verdict is podStatus's answer: the status to write and what follows.
type verdict struct {
	status  v1alpha1.KuryrPodStatus
	outcome outcome
	// cause is why: the rollback's reason (failed), the joined errors
	// (retry), the node's error (node not ready).
	cause error
	// requeueAfter is the next look for pending and node not ready.
	requeueAfter time.Duration
	// becameReady: Ready turned True with this status.
	becameReady bool
}

// podStatus computes a pod's status and conditions from what its reconcile
// saw. It calls nothing: the reconciler writes its result once and acts on
// its outcome.
func podStatus(o observation) verdict {
	st := *o.prev.DeepCopy()
	st.ObservedGeneration = o.generation
	st.WaitingForNetworks = nil
	setCondition(&st, v1alpha1.ConditionSpecValid, true, reasonPlanned, fmt.Sprintf("%d interfaces", o.planned), o.generation)
	ready := func(ok bool, reason, msg string) {
		setCondition(&st, v1alpha1.ConditionReady, ok, reason, msg, o.generation)
	}

	if o.nodeErr != nil {
		ready(false, reasonNodeNotReady, publicText(o.nodeErr))
		st.Summary = reasonNodeNotReady
		return verdict{status: st, outcome: outcomeNodeNotReady, cause: o.nodeErr, requeueAfter: nodeNotReadyDelay}
	}

	st.Interfaces = make([]v1alpha1.InterfaceStatus, len(o.entries))
	var transient []error
	var fatal error
	pending := 0
	for i := range o.entries {
		o.entries[i].DeepCopyInto(&st.Interfaces[i])
		ifName := o.entries[i].IfName
		switch err := o.errs[i]; {
		case err == nil:
		case isTerminal(err):
			fatal = fmt.Errorf("interface %s: %w", ifName, err)
		default:
			transient = append(transient, fmt.Errorf("interface %s: %w", ifName, err))
		}
		if st.Interfaces[i].State == v1alpha1.StatePending {
			pending++
		}
	}
	if fatal == nil && pending > 0 && o.waited > o.activeTimeout {
		fatal = fmt.Errorf("%d interfaces not ACTIVE after %s (activeTimeout)", pending, o.activeTimeout)
	}

	switch {
	case fatal != nil:
		for i := range st.Interfaces {
			s := &st.Interfaces[i]
			s.State = v1alpha1.StateFailed
			if s.Message == "" {
				s.Message = "rolled back: " + publicText(fatal)
			}
			s.PortID, s.VLANID = "", 0
		}
		ready(false, reasonFailed, publicText(fatal))
		st.Summary = reasonFailed
		return verdict{status: st, outcome: outcomeFailed, cause: fatal}
	case len(transient) > 0:
		cause := errors.Join(transient...)
		st.Summary = v1alpha1.InterfacesSummary(st.Interfaces)
		ready(false, reasonPending, publicText(cause))
		return verdict{status: st, outcome: outcomeRetry, cause: cause}
	case pending > 0:
		st.Summary = v1alpha1.InterfacesSummary(st.Interfaces)
		ready(false, reasonPending, fmt.Sprintf("%d of %d interfaces not ACTIVE yet", pending, len(st.Interfaces)))
		return verdict{status: st, outcome: outcomePending, requeueAfter: pollDelay(o.waited, o.waiting)}
	}
	wasReady := meta.IsStatusConditionTrue(o.prev.Conditions, v1alpha1.ConditionReady)
	// The daemon's summary once it plugged them (the same function):
	// reconciling after its report writes nothing.
	st.Summary = v1alpha1.InterfacesSummary(st.Interfaces)
	ready(true, reasonActive, fmt.Sprintf("%d interfaces ACTIVE", len(st.Interfaces)))
	return verdict{status: st, outcome: outcomeReady, becameReady: !wasReady}
}

// waitClock remembers, per pod, since when its interfaces have been
// waiting for ACTIVE with no error. It lives in memory: after a restart a
// pod's wait starts over (erring on the side of not failing it).
type waitClock struct {
	mu    sync.Mutex
	since map[types.UID]time.Time
}

// waited records one reconcile's view of the pod with uid (waiting: some
// interface is pending and no call failed) and returns how long it has
// been waiting: 0 when it is not, or has just begun.
func (c *waitClock) waited(uid types.UID, now time.Time, waiting bool) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !waiting {
		delete(c.since, uid)
		return 0
	}
	if c.since == nil {
		c.since = map[types.UID]time.Time{}
	}
	s, ok := c.since[uid]
	if !ok {
		c.since[uid] = now
		return 0
	}
	return now.Sub(s)
}

func (c *waitClock) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.since, uid)
}

// Polls for ACTIVE: the first pollFirst after the wait began, then slower
// as it drags on; all waiting pods together poll at most pollBudget times
// a second.
const (
	pollFirst  = 50 * time.Millisecond
	pollBudget = 20
	pollMax    = 2 * time.Second
)

// pollDelay paces one pod's wait for ACTIVE, counted from the moment its
// interfaces were wired (waited), not from the KuryrPod's creation: an
// agent binds a subport within a fraction of a second of add_subports
// (the bench's agent stand-in every 0.2 s), and a pod whose creates were
// slow must not be polled slowly for that. The delay grows by a fifth of
// the wait, so that a Nova attach of several seconds costs no more polls
// than when they were paced by the KuryrPod's age. The waiting pods share
// pollBudget: at N=50 their polls would otherwise compete with the
// creates and add_subports for Neutron's API workers.
func pollDelay(waited time.Duration, waiting int) time.Duration {
	d := max(pollFirst+waited/5, time.Duration(waiting)*time.Second/pollBudget)
	return min(d, pollMax)
}

// untilFirstPoll returns how long until the first poll of the pod with
// uid is due: more than 0 only while it waits for ACTIVE and its wait
// began less than pollFirst ago.
func (c *waitClock) untilFirstPoll(uid types.UID, now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.since[uid]
	if !ok {
		return 0
	}
	return max(pollFirst-now.Sub(s), 0)
}

// count returns how many pods wait for ACTIVE now.
func (c *waitClock) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.since)
}

// specValid says the controller recorded a successful plan for kp.
func specValid(kp *v1alpha1.KuryrPod) bool {
	return meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionSpecValid)
}

// failed says kp's interfaces were rolled back after a terminal failure.
func failed(kp *v1alpha1.KuryrPod) bool {
	c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonFailed
}

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
