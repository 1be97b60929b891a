package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Env is what a round runs against.
type Env struct {
	Client client.WithWatch
	// Node is the Node pods are put on; NodeIP its InternalIP (the parent
	// port's IP), written into each pod's status.hostIP.
	Node, NodeIP string
	// Subject is the controller under test: what it writes per pod and
	// when that says ready.
	Subject Subject
	// NeutronLog is neutron-server's log file (access lines are counted).
	NeutronLog string
	// MetricsURL is the controller's /metrics (ours); empty: not scraped.
	MetricsURL string
	// ProcRoot is /proc; ControllerPGID the controller's process group
	// (its memory is the sum over the group: kuryr-kubernetes forks
	// workers); Groups are process groups whose CPU time is measured
	// (name → pgid).
	ProcRoot       string
	ControllerPGID int
	Groups         map[string]int
	// Timeout bounds a round's wait for ready pods and for release.
	Timeout time.Duration
	// Parallel bounds how many pods are created at once.
	Parallel int
	// Log receives progress lines.
	Log func(format string, args ...any)
	// Health, when set, is asked every second while a round waits; an
	// error (the controller or the agent stand-in died) ends the round.
	Health func() error
}

// Result is one round: N pods created at once, measured until every
// KuryrPod is Ready, then released.
type Result struct {
	Name string
	N    int
	// Latency per pod: from just before its create call to the moment the
	// harness saw its KuryrPod with every interface Active and Ready=True.
	Latency []time.Duration
	// Planned per pod: from just before its create call to the first sight
	// of its KuryrPod (the Kubernetes side of the controller's work).
	Planned []time.Duration
	// Wall: from the first create call to the last pod ready.
	Wall time.Duration
	// Neutron is what neutron-server logged in the window, by operation;
	// Requests the lines themselves.
	Neutron  map[string]OpStats
	Requests []Request `json:"-"`
	// Start is when the first create call was made.
	Start time.Time
	// Metrics is the controller's kuryr_openstack_requests_total delta in
	// the window, by operation (non-2xx codes in the name).
	Metrics map[string]float64
	// Controller memory at the end of the round, summed over its process
	// group (Peak: the sum of each process's high-water mark since its
	// start), and its Go heap in use then (go_memstats_heap_inuse_bytes;
	// ours only).
	Memory    Memory
	HeapInuse float64
	// LoadAvg is /proc/loadavg at the start and at the end of the window
	// (the machine is shared: other work competes for the CPUs).
	LoadAvg [2]string
	// CPU seconds each process group used in the window.
	CPU map[string]float64
	// Release: deleting the pods until every port is gone in Neutron.
	ReleaseWall     time.Duration
	ReleaseRequests int
}

// Ready reports whether kp shows every requested interface Active and
// the Ready condition True.
func Ready(kp *v1alpha1.KuryrPod) bool {
	if len(kp.Status.Interfaces) == 0 || len(kp.Status.Interfaces) < len(kp.Spec.Interfaces) {
		return false
	}
	for _, s := range kp.Status.Interfaces {
		if s.State != v1alpha1.StateActive {
			return false
		}
	}
	return meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady)
}

func benchPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "kuryr-bench"}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

type groupCPU map[string]float64

func (e *Env) cpu() groupCPU {
	out := groupCPU{}
	for name, pgid := range e.Groups {
		if s, _, err := GroupCPU(e.ProcRoot, pgid); err == nil {
			out[name] = s
		}
	}
	return out
}

// Run runs one round of n pods in namespace ns (created if missing).
func (e *Env) Run(ctx context.Context, name, ns string, n int) (Result, error) {
	res := Result{Name: name, N: n}
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()

	w, err := e.Client.Watch(ctx, e.Subject.NewList(), client.InNamespace(ns))
	if err != nil {
		return res, fmt.Errorf("watch %s in %s: %w", e.Subject.Kind, ns, err)
	}
	defer w.Stop()

	mark, err := MarkLog(e.NeutronLog)
	if err != nil {
		return res, err
	}
	before, err := e.scrape(ctx, "kuryr_openstack_requests_total")
	if err != nil {
		return res, err
	}
	cpu0 := e.cpu()
	res.LoadAvg[0] = loadAvg(e.ProcRoot)

	var mu sync.Mutex
	created := map[string]time.Time{}
	ready := map[string]time.Time{}
	seen := map[string]time.Time{}
	errs := make(chan error, n)
	sem := make(chan struct{}, max(1, e.Parallel))
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pod := benchPod(ns, fmt.Sprintf("bench-%d", i), e.Node)
			t0 := time.Now()
			mu.Lock()
			created[pod.Name] = t0
			mu.Unlock()
			if err := e.Client.Create(ctx, pod); err != nil {
				errs <- fmt.Errorf("create pod %s/%s: %w", ns, pod.Name, err)
				return
			}
			// As the kubelet would once it admits the pod.
			patch := client.MergeFrom(pod.DeepCopy())
			pod.Status.Phase = corev1.PodPending
			pod.Status.HostIP = e.NodeIP
			pod.Status.HostIPs = []corev1.HostIP{{IP: e.NodeIP}}
			if err := e.Client.Status().Patch(ctx, pod, patch); err != nil {
				errs <- fmt.Errorf("patch status of pod %s/%s: %w", ns, pod.Name, err)
			}
		}()
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for len(ready) < n {
		select {
		case err := <-errs:
			return res, err
		case <-tick.C:
			if e.Health != nil {
				if err := e.Health(); err != nil {
					return res, fmt.Errorf("round %s: %w", name, err)
				}
			}
		case <-ctx.Done():
			return res, fmt.Errorf("round %s: %d of %d pods ready after %s: %w", name, len(ready), n, e.Timeout, ctx.Err())
		case ev, ok := <-w.ResultChan():
			if !ok {
				return res, fmt.Errorf("round %s: the %s watch closed with %d of %d ready", name, e.Subject.Kind, len(ready), n)
			}
			obj, isObj := ev.Object.(client.Object)
			if !isObj || ev.Type == watch.Deleted || ev.Type == watch.Error {
				continue
			}
			pod := obj.GetName()
			if _, ok := seen[pod]; !ok {
				seen[pod] = time.Now()
			}
			if !e.Subject.Ready(obj) {
				continue
			}
			if _, seen := ready[pod]; !seen {
				ready[pod] = time.Now()
			}
		}
	}
	wg.Wait()
	end := time.Now()
	res.Wall = end.Sub(start)
	mu.Lock()
	for pod, t := range ready {
		res.Latency = append(res.Latency, t.Sub(created[pod]))
		res.Planned = append(res.Planned, seen[pod].Sub(created[pod]))
	}
	mu.Unlock()
	e.Log("%s: %d pods ready, wall %s", name, n, res.Wall.Round(time.Millisecond))

	// Let the last requests reach the log and the controller settle (a
	// Ready KuryrPod must cost no further call).
	time.Sleep(time.Second)
	cpu1 := e.cpu()
	res.LoadAvg[1] = loadAvg(e.ProcRoot)
	res.CPU = map[string]float64{}
	for k, v := range cpu1 {
		res.CPU[k] = v - cpu0[k]
	}
	reqs, err := ReadRequests(e.NeutronLog, mark)
	if err != nil {
		return res, err
	}
	// neutron-server logs a request after answering it: a line of the
	// previous round's last request can land after the mark. Keep only
	// requests that ended inside the window.
	reqs = slices.DeleteFunc(reqs, func(r Request) bool { return r.At.Before(start.Truncate(time.Millisecond)) })
	res.Neutron, res.Requests, res.Start = ByOp(reqs), reqs, start
	after, err := e.scrape(ctx, "kuryr_openstack_requests_total")
	if err != nil {
		return res, err
	}
	res.Metrics = map[string]float64{}
	for labels, d := range CounterDelta(before, after) {
		res.Metrics[OpOf(labels)] += d
	}
	if res.Memory, err = GroupMemory(e.ProcRoot, e.ControllerPGID); err != nil {
		return res, err
	}
	if heap, err := e.scrape(ctx, "go_memstats_heap_inuse_bytes"); err == nil {
		res.HeapInuse = heap[""]
	}
	return res, e.release(ctx, &res, ns)
}

// scrape reads a metric of the controller, nothing without MetricsURL.
func (e *Env) scrape(ctx context.Context, name string) (map[string]float64, error) {
	if e.MetricsURL == "" {
		return map[string]float64{}, nil
	}
	return ScrapeCounter(ctx, e.MetricsURL, name)
}

// release deletes the round's pods and waits until the controller's
// per-pod resources and (unless a pool keeps them) Neutron ports are gone,
// so that the next round starts clean.
func (e *Env) release(ctx context.Context, res *Result, ns string) error {
	mark, err := MarkLog(e.NeutronLog)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := e.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0)); err != nil {
		return fmt.Errorf("delete pods in %s: %w", ns, err)
	}
	for {
		kps := e.Subject.NewList()
		var pods corev1.PodList
		if err := e.Client.List(ctx, kps, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("list %s in %s: %w", e.Subject.Kind, ns, err)
		}
		if err := e.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("list pods in %s: %w", ns, err)
		}
		if meta.LenList(kps) == 0 && len(pods.Items) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("release %s: %d pods and %d %s left: %w", ns, len(pods.Items), meta.LenList(kps), e.Subject.Kind, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	res.ReleaseWall = time.Since(start)
	own := 0 // the harness's own requests
	if e.Subject.PortsLeft != nil {
		left, what, err := e.Subject.PortsLeft(ctx)
		if err != nil {
			return err
		}
		if left != 0 {
			return fmt.Errorf("release %s: %d %s still in Neutron", ns, left, what)
		}
		own++
	}
	reqs, err := ReadRequests(e.NeutronLog, mark)
	if err != nil {
		return err
	}
	res.ReleaseRequests = len(reqs) - own
	e.Log("%s: released in %s (%d Neutron requests)", res.Name, res.ReleaseWall.Round(time.Millisecond), res.ReleaseRequests)
	return nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg(procRoot string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, "loadavg"))
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
