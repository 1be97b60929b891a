package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

func iface(name string, state v1alpha1.InterfaceState, portID string, vlan int) v1alpha1.InterfaceStatus {
	return v1alpha1.InterfaceStatus{IfName: name, Driver: v1alpha1.DriverNestedVLAN, State: state, PortID: portID, VLANID: vlan,
		IPs: []string{"10.1.0.5/16"}}
}

// TestPodStatus: podStatus turns what a reconcile saw into the status to
// write (summary, per-interface states, conditions) and the outcome that
// decides the requeue, without any call.
func TestPodStatus(t *testing.T) {
	t.Parallel()
	readyBefore := v1alpha1.KuryrPodStatus{WaitingForNetworks: []string{"ns/old"}}
	setCondition(&readyBefore, v1alpha1.ConditionReady, true, reasonActive, "2 interfaces ACTIVE", 1)
	transient := fmt.Errorf("add port p1 to trunk t1: %w", openstack.ErrConflict)

	cases := []struct {
		name    string
		obs     observation
		outcome outcome
		// Ready condition
		ready       metav1.ConditionStatus
		reason, msg string
		summary     string
		states      []v1alpha1.InterfaceState
		portIDs     []string
		requeue     time.Duration
		becameReady bool
	}{{
		name: "all active for the first time",
		obs: observation{planned: 2, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1), iface("net1", v1alpha1.StatePlugged, "p1", 2)},
			errs: make([]error, 2), activeTimeout: time.Minute},
		outcome: outcomeReady, ready: metav1.ConditionTrue, reason: reasonActive, msg: "2 interfaces ACTIVE", summary: "1/2 plugged",
		states: []v1alpha1.InterfaceState{v1alpha1.StateActive, v1alpha1.StatePlugged}, portIDs: []string{"p0", "p1"}, becameReady: true,
	}, {
		name: "all active and already Ready",
		obs: observation{prev: readyBefore, planned: 1, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1)},
			errs: make([]error, 1), activeTimeout: time.Minute},
		outcome: outcomeReady, ready: metav1.ConditionTrue, reason: reasonActive, msg: "1 interfaces ACTIVE", summary: "1/1 active",
		states: []v1alpha1.InterfaceState{v1alpha1.StateActive}, portIDs: []string{"p0"}, becameReady: false,
	}, {
		name: "one pending within the timeout",
		obs: observation{planned: 2, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1), iface("net1", v1alpha1.StatePending, "p1", 2)},
			errs: make([]error, 2), activeTimeout: time.Minute},
		outcome: outcomePending, ready: metav1.ConditionFalse, reason: reasonPending, msg: "1 of 2 interfaces not ACTIVE yet", summary: "1/2 active",
		states: []v1alpha1.InterfaceState{v1alpha1.StateActive, v1alpha1.StatePending}, portIDs: []string{"p0", "p1"},
		requeue: pollFirst,
	}, {
		name: "pending past the active timeout rolls back",
		obs: observation{planned: 2, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1), iface("net1", v1alpha1.StatePending, "p1", 2)},
			errs: make([]error, 2), waited: 2 * time.Minute, activeTimeout: time.Minute},
		outcome: outcomeFailed, ready: metav1.ConditionFalse, reason: reasonFailed, msg: "1 interfaces not ACTIVE after 1m0s (activeTimeout)", summary: reasonFailed,
		states: []v1alpha1.InterfaceState{v1alpha1.StateFailed, v1alpha1.StateFailed}, portIDs: []string{"", ""},
	}, {
		name: "an old KuryrPod whose wait for ACTIVE began moments ago (the cloud was down) waits, polled at the pace of that wait",
		obs: observation{planned: 2, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1), iface("net1", v1alpha1.StatePending, "p1", 2)},
			errs: make([]error, 2), waited: time.Second, activeTimeout: time.Minute},
		outcome: outcomePending, ready: metav1.ConditionFalse, reason: reasonPending, msg: "1 of 2 interfaces not ACTIVE yet", summary: "1/2 active",
		states: []v1alpha1.InterfaceState{v1alpha1.StateActive, v1alpha1.StatePending}, portIDs: []string{"p0", "p1"},
		requeue: 250 * time.Millisecond,
	}, {
		name: "a transient error retries with backoff",
		obs: observation{planned: 2, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1), iface("net1", v1alpha1.StatePending, "p1", 0)},
			errs: []error{nil, transient}, activeTimeout: time.Minute},
		outcome: outcomeRetry, ready: metav1.ConditionFalse, reason: reasonPending, msg: "interface net1: add port p1 to trunk t1", summary: "1/2 active",
		states: []v1alpha1.InterfaceState{v1alpha1.StateActive, v1alpha1.StatePending}, portIDs: []string{"p0", "p1"},
	}, {
		name: "a terminal error rolls back every interface, a transient one too",
		obs: observation{planned: 2, entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StatePending, "p0", 0), iface("dpdk0", v1alpha1.StatePending, "", 0)},
			errs: []error{transient, terminal(errors.New("subnet s1 of interface dpdk0: not found"))}, activeTimeout: time.Minute},
		outcome: outcomeFailed, ready: metav1.ConditionFalse, reason: reasonFailed, msg: "interface dpdk0: subnet s1 of interface dpdk0: not found", summary: reasonFailed,
		states: []v1alpha1.InterfaceState{v1alpha1.StateFailed, v1alpha1.StateFailed}, portIDs: []string{"", ""},
	}, {
		name: "node not ready keeps the interfaces as they were",
		obs: observation{prev: v1alpha1.KuryrPodStatus{Interfaces: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StatePending, "", 0)}},
			planned: 1, nodeErr: fmt.Errorf("node n1 has no InternalIP: %w", errNodeNotReady), activeTimeout: time.Minute},
		outcome: outcomeNodeNotReady, ready: metav1.ConditionFalse, reason: reasonNodeNotReady, msg: "node n1 has no InternalIP", summary: reasonNodeNotReady,
		states: []v1alpha1.InterfaceState{v1alpha1.StatePending}, portIDs: []string{""}, requeue: nodeNotReadyDelay,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.obs.generation = 7
			prevCopy := c.obs.prev.DeepCopy()
			v := podStatus(c.obs)
			if v.outcome != c.outcome || v.requeueAfter != c.requeue || v.becameReady != c.becameReady {
				t.Errorf("outcome %d requeue %s becameReady %v, want %d %s %v", v.outcome, v.requeueAfter, v.becameReady, c.outcome, c.requeue, c.becameReady)
			}
			st := v.status
			if st.Summary != c.summary || st.ObservedGeneration != 7 || st.WaitingForNetworks != nil {
				t.Errorf("summary %q generation %d waiting %v, want %q, 7, none", st.Summary, st.ObservedGeneration, st.WaitingForNetworks, c.summary)
			}
			r := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
			if r == nil || r.Status != c.ready || r.Reason != c.reason || !strings.HasPrefix(r.Message, c.msg) || r.ObservedGeneration != 7 {
				t.Errorf("Ready %+v, want %s %s %q…", r, c.ready, c.reason, c.msg)
			}
			if !meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionSpecValid) {
				t.Errorf("SpecValid not True: %+v", st.Conditions)
			}
			if len(st.Interfaces) != len(c.states) {
				t.Fatalf("interfaces %+v, want %d", st.Interfaces, len(c.states))
			}
			for i, s := range st.Interfaces {
				if s.State != c.states[i] || s.PortID != c.portIDs[i] {
					t.Errorf("%s: state %s port %q, want %s %q", s.IfName, s.State, s.PortID, c.states[i], c.portIDs[i])
				}
				if s.State == v1alpha1.StateFailed && (s.VLANID != 0 || s.Message == "") {
					t.Errorf("%s: failed with VLAN %d and message %q, want no VLAN and a reason", s.IfName, s.VLANID, s.Message)
				}
			}
			if (c.outcome == outcomeFailed || c.outcome == outcomeRetry || c.outcome == outcomeNodeNotReady) != (v.cause != nil) {
				t.Errorf("cause %v for outcome %d", v.cause, v.outcome)
			}
			if len(c.obs.prev.Conditions) != len(prevCopy.Conditions) || len(c.obs.prev.WaitingForNetworks) != len(prevCopy.WaitingForNetworks) {
				t.Errorf("podStatus changed its input: %+v", c.obs.prev)
			}
		})
	}
}

// TestPodStatusAfterTheDaemonsReportIsTheSame: the status the controller
// computes for a Ready pod after the node's daemon reported its
// interfaces Plugged is the one the daemon wrote (the reconcile its write
// wakes writes nothing), and so is the status after the daemon's DEL
// report made them Active again.
func TestPodStatusAfterTheDaemonsReportIsTheSame(t *testing.T) {
	t.Parallel()
	entries := []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 1), iface("net1", v1alpha1.StateActive, "p1", 2)}
	written := podStatus(observation{planned: 2, entries: entries, errs: make([]error, 2), activeTimeout: time.Minute}).status
	for _, state := range []v1alpha1.InterfaceState{v1alpha1.StatePlugged, v1alpha1.StateActive} {
		// The daemon's report (recordPlugged, recordUnplugged).
		reported := *written.DeepCopy()
		for i := range reported.Interfaces {
			reported.Interfaces[i].State = state
		}
		reported.Summary = v1alpha1.InterfacesSummary(reported.Interfaces)
		// fanOut keeps Active and Plugged entries as they are.
		v := podStatus(observation{prev: reported, planned: 2, entries: reported.DeepCopy().Interfaces, errs: make([]error, 2),
			activeTimeout: time.Minute})
		if !equality.Semantic.DeepEqual(v.status, reported) {
			t.Errorf("after the daemon reported the interfaces %s the controller would write summary %q over %q (status %+v, the daemon's %+v)",
				state, v.status.Summary, reported.Summary, v.status, reported)
		}
	}
}

// TestPodStatusRollbackKeepsEachInterfacesOwnMessage: an interface that
// failed says why; the others say they were rolled back and why.
func TestPodStatusRollbackKeepsEachInterfacesOwnMessage(t *testing.T) {
	t.Parallel()
	bad := iface("net1", v1alpha1.StatePending, "", 0)
	bad.Message = "create port for interface net1 on subnet s1: forbidden"
	v := podStatus(observation{planned: 2, activeTimeout: time.Minute,
		entries: []v1alpha1.InterfaceStatus{iface("eth0", v1alpha1.StateActive, "p0", 3), bad},
		errs:    []error{nil, terminal(errors.New(bad.Message))}})
	if got := v.status.Interfaces[1].Message; got != bad.Message {
		t.Errorf("failed interface's message %q, want %q", got, bad.Message)
	}
	if got := v.status.Interfaces[0].Message; got != "rolled back: interface net1: "+bad.Message {
		t.Errorf("rolled-back interface's message %q", got)
	}
}

// TestPollDelay: a lone pod is polled 50 ms after its wait began, then
// slower as it drags on, never slower than every 2 s; many waiting pods
// share 20 polls a second.
func TestPollDelay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		waited  time.Duration
		waiting int
		want    time.Duration
	}{
		{0, 1, 50 * time.Millisecond},
		{500 * time.Millisecond, 1, 150 * time.Millisecond},
		{5 * time.Second, 1, 1050 * time.Millisecond},
		{time.Hour, 1, 2 * time.Second},
		{0, 12, 600 * time.Millisecond},
		{0, 1000, 2 * time.Second},
	} {
		if got := pollDelay(c.waited, c.waiting); got != c.want {
			t.Errorf("pollDelay(%s, %d) = %s, want %s", c.waited, c.waiting, got, c.want)
		}
	}
}

// TestUntilFirstPoll: a pod whose wait for ACTIVE began 20 ms ago has its
// first poll due in 30 ms; one that waits longer, or does not wait, has
// nothing to wait for.
func TestUntilFirstPoll(t *testing.T) {
	t.Parallel()
	var c waitClock
	start := time.Unix(1000, 0)
	c.waited("waits", start, true)
	if got := c.untilFirstPoll("waits", start.Add(20*time.Millisecond)); got != 30*time.Millisecond {
		t.Errorf("20 ms into the wait: first poll due in %s, want 30ms", got)
	}
	if got := c.untilFirstPoll("waits", start.Add(pollFirst)); got != 0 {
		t.Errorf("at pollFirst: %s, want 0", got)
	}
	if got := c.untilFirstPoll("other", start); got != 0 {
		t.Errorf("a pod that does not wait: %s, want 0", got)
	}
	c.waited("waits", start.Add(time.Millisecond), false)
	if got := c.untilFirstPoll("waits", start.Add(2*time.Millisecond)); got != 0 {
		t.Errorf("after the wait ended: %s, want 0", got)
	}
}
