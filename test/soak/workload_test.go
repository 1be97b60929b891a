package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// soak is one run's state: the pods it made and what became of them, the
// chaos it caused, and the most each layer held.
type soak struct {
	env  *aio.Env
	logf func(string, ...any)

	rmu sync.Mutex // the churn and the chaos draw from rng side by side
	rng *rand.Rand

	mu    sync.Mutex
	pods  map[string]*podState // by name
	seq   int
	kills map[string]int // controller, daemon, apiserver, node
	peak  map[string]int // by layer
	errs  []string       // chaos actions that failed
}

// podState is one pod's life as the soak saw it.
type podState struct {
	created, ready, deleted time.Time
	node                    string
	lostWithNode            bool // its node was deleted before it was
}

func newSoak(env *aio.Env, rng *rand.Rand, logf func(string, ...any)) *soak {
	return &soak{env: env, rng: rng, logf: logf, pods: map[string]*podState{}, kills: map[string]int{}, peak: map[string]int{}}
}

// intN draws from the soak's random source, [0, n).
func (s *soak) intN(n int) int {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.rng.IntN(n)
}

// gap draws the wait before the next kill: between half and all of upTo.
func (s *soak) gap(upTo time.Duration) time.Duration {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return upTo/2 + time.Duration(s.rng.Int64N(int64(upTo/2)))
}

func (s *soak) liveNodes() []*aio.Node {
	var out []*aio.Node
	for _, n := range s.env.Nodes {
		if !n.Deleted() {
			out = append(out, n)
		}
	}
	return out
}

// churn keeps podsPerNode pods a live node: once a second it looks at the
// pods, then creates one when short, else deletes one (mostly a Ready one;
// one time in five any, so some go in the middle of their ADD).
func (s *soak) churn(ctx context.Context) {
	pods := s.env.Clientset.CoreV1().Pods(namespace)
	for ctx.Err() == nil {
		sleep(ctx, time.Second)
		list, err := pods.List(ctx, metav1.ListOptions{})
		if err != nil {
			continue // the API server restarting
		}
		live, ready := s.observe(list.Items)
		switch {
		case len(live) < podsPerNode*len(s.liveNodes()):
			s.mu.Lock()
			s.seq++
			name := fmt.Sprintf("soak-%05d", s.seq)
			s.mu.Unlock()
			if _, err := s.env.CreatePod(ctx, soakPod(name)); err == nil {
				s.mu.Lock()
				s.pods[name] = &podState{created: time.Now()}
				s.mu.Unlock()
			}
		default:
			from := ready
			if len(ready) == 0 || s.intN(5) == 0 {
				from = live
			}
			name := from[s.intN(len(from))]
			if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err == nil || apierrors.IsNotFound(err) {
				s.mu.Lock()
				s.pods[name].deleted = time.Now()
				s.mu.Unlock()
			}
		}
	}
}

// soakPod is a pod of the soak: the demo's DPDK pod (a management and a
// DPDK interface) without its resources (many on a node; nothing runs)
// and with a grace period of 1 s.
func soakPod(name string) *corev1.Pod {
	p := aio.DPDKPod(namespace, name)
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(1))
	return p
}

// observe records what the listed pods show (Ready, node) and returns the
// live ones the churn may delete (not being deleted, not on a deleted
// node) and of those the Ready ones.
func (s *soak) observe(items []corev1.Pod) (live, ready []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range items {
		p := &items[i]
		st, ok := s.pods[p.Name]
		if !ok {
			continue
		}
		st.node = p.Spec.NodeName
		if c := aio.PodCondition(p, corev1.PodReady); c != nil && c.Status == corev1.ConditionTrue && st.ready.IsZero() {
			st.ready = time.Now()
		}
		if n := s.env.Node(st.node); n != nil && n.Deleted() {
			if st.deleted.IsZero() {
				st.lostWithNode = true
			}
			continue
		}
		if p.DeletionTimestamp != nil || !st.deleted.IsZero() {
			continue
		}
		live = append(live, p.Name)
		if !st.ready.IsZero() {
			ready = append(ready, p.Name)
		}
	}
	slices.Sort(live)
	slices.Sort(ready)
	return live, ready
}

// faultKinds are what a failing request gets: an overloaded cloud, a lost
// answer (the work done), a conflict, and no answer past the client's
// timeout.
var faultKinds = []cloudsim.Fault{
	{Rate: faultRate, Status: 503},
	{Rate: faultRate, Status: 500, After: true},
	{Rate: faultRate, Status: 409},
	{Rate: faultRate, Hang: true, HangFor: 2 * requestTimeout},
}

// faultFamilies get a kind each, drawn again every few seconds.
var faultFamilies = []string{"neutron.*", "neutron.ports.*", "neutron.trunks.*", "nova.*"}

func (s *soak) rollFaults() {
	for _, f := range faultFamilies {
		s.env.Cloud.SetFault(f, faultKinds[s.intN(len(faultKinds))])
	}
}

func (s *soak) faultsOff() {
	for _, f := range faultFamilies {
		s.env.Cloud.SetFault(f, cloudsim.Fault{})
	}
}

// chaos draws the faults again every 15 s and, at random moments, kills
// kuryr-controller or a kuryr-daemon, restarts the API server, and once,
// half-way, deletes a node and its server.
func (s *soak) chaos(ctx context.Context) {
	start := time.Now()
	deadline, _ := ctx.Deadline()
	half := start.Add(deadline.Sub(start) / 2)
	maxGap := min(max(deadline.Sub(start)/6, 20*time.Second), 3*time.Minute)
	actions := []string{"daemon", "controller", "apiserver", "daemon", "controller"}
	next := time.Now().Add(s.gap(maxGap))
	nodeDeleted := false
	s.rollFaults()
	nextRoll := time.Now().Add(15 * time.Second)
	for i := 0; ctx.Err() == nil; {
		sleep(ctx, time.Second)
		if time.Now().After(nextRoll) {
			s.rollFaults()
			nextRoll = time.Now().Add(15 * time.Second)
		}
		if ctx.Err() != nil {
			return
		}
		if !nodeDeleted && time.Now().After(half) {
			nodeDeleted = true
			live := s.liveNodes()
			s.act(ctx, "node", func(ctx context.Context) error { return s.env.DeleteNode(ctx, live[s.intN(len(live))]) })
			continue
		}
		if time.Now().Before(next) {
			continue
		}
		what := actions[i%len(actions)]
		i++
		switch what {
		case "controller":
			s.act(ctx, what, func(ctx context.Context) error { return s.env.RestartController(ctx, true) })
		case "daemon":
			live := s.liveNodes()
			n := live[s.intN(len(live))]
			s.act(ctx, what, func(ctx context.Context) error { return s.env.RestartDaemon(ctx, n, true) })
		case "apiserver":
			s.act(ctx, what, s.env.RestartAPIServer)
		}
		next = time.Now().Add(s.gap(maxGap))
	}
}

// act runs one chaos action, bounded, and records it.
func (s *soak) act(ctx context.Context, what string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("%s: %v", what, err))
		return
	}
	s.kills[what]++
	done := map[string]string{"controller": "kuryr-controller SIGKILLed and serving again", "daemon": "a kuryr-daemon SIGKILLed and serving again",
		"apiserver": "kube-apiserver SIGKILLed and ready again", "node": "a node deleted with its server"}[what]
	s.logf("chaos: %s in %.1f s", done, time.Since(start).Seconds())
}

// sample records, every 5 s, the most each layer held.
func (s *soak) sample(ctx context.Context) {
	for ctx.Err() == nil {
		traces, _ := s.env.Traces()
		counts := map[string]int{}
		for _, tr := range traces {
			counts[tr.Layer]++
		}
		s.mu.Lock()
		for l, n := range counts {
			s.peak[l] = max(s.peak[l], n)
		}
		s.mu.Unlock()
		sleep(ctx, 5*time.Second)
	}
}

// settle deletes the pods left, then waits (up to bound) until no pod or
// KuryrPod of the soak exists and no layer holds anything; it returns how
// long that took.
func (s *soak) settle(ctx context.Context, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	pods := s.env.Clientset.CoreV1().Pods(namespace)
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, bound, true, func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		var kps v1alpha1.KuryrPodList
		if err := s.env.Client.List(ctx, &kps); err != nil {
			return false, nil
		}
		s.observe(list.Items)
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				_ = pods.Delete(ctx, p.Name, metav1.DeleteOptions{})
				s.mu.Lock()
				if st := s.pods[p.Name]; st != nil && st.deleted.IsZero() {
					st.deleted = time.Now()
				}
				s.mu.Unlock()
			}
		}
		left := s.env.Leaks()
		last = fmt.Sprintf("%d pods, %d KuryrPods, %d leftovers", len(list.Items), len(kps.Items), len(left))
		return len(list.Items) == 0 && len(kps.Items) == 0 && len(left) == 0, nil
	})
	if err != nil {
		return time.Since(start), fmt.Errorf("not settled within %s (%s): %w", bound, last, err)
	}
	return time.Since(start), nil
}

// failures are the pods that missed their expected outcome and the chaos
// actions that failed.
func (s *soak) failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, p := range s.pods {
		end := p.deleted
		if end.IsZero() || p.lostWithNode {
			end = time.Now()
		}
		if p.ready.IsZero() && !p.lostWithNode && end.Sub(p.created) > readyWithin {
			out = append(out, fmt.Sprintf("pod %s (node %q) not Ready %s after its creation", name, p.node, readyWithin))
		}
	}
	slices.Sort(out)
	for _, e := range s.errs {
		out = append(out, "chaos action failed: "+e)
	}
	return out
}

// exercised fails a run that did not do what it claims: each kind of
// chaos happened, faults were injected, pods became Ready, and the layers
// a pod with these interfaces uses held something during the run.
func (s *soak) exercised(r report) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, k := range []string{"controller", "daemon", "apiserver", "node"} {
		if s.kills[k] == 0 {
			errs = append(errs, fmt.Errorf("no %s was killed (or deleted): the run is too short for its chaos", k))
		}
	}
	var faults int64
	for _, op := range s.env.Cloud.Operations() {
		faults += s.env.Cloud.FaultCount(op)
	}
	if faults == 0 {
		errs = append(errs, errors.New("no cloud fault was injected"))
	}
	if s.count(func(p *podState) bool { return !p.ready.IsZero() }) == 0 {
		errs = append(errs, errors.New("no pod became Ready"))
	}
	errs = append(errs, r.unexercised()...)
	return errors.Join(errs...)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
