package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// aioTarget is one of issue 14's targets for `make bench`, read (not
// asserted) on the run it names: profile, N over nodes, and, where the
// target says so, warm DPDK pools.
type aioTarget struct {
	what     string
	profile  string
	n, nodes int
	pools    bool
	// measure returns the run's value and how to print it; ok is false
	// when the run has none (no pod ready).
	measure func(AIOResult) (v float64, text string, ok bool)
	limit   float64
	atLeast bool // met when the value is at least limit (else at most)
	// best, when set, is the best value the run's machine allows with
	// Kubernetes' own processes costing per pod the CPU seconds they did
	// in the run (perPod) and everything else costing nothing.
	best func(r AIOResult, perPod float64) float64
}

// aioTargets are issue 14's targets for the all-in-one bench.
var aioTargets = []aioTarget{
	{what: "network-ready p50 ≤ 300 ms", profile: "realistic", n: 100, nodes: 10, pools: true, measure: readyPercentile(50), limit: 0.3,
		best: bestPercentile(50)},
	{what: "network-ready p99 ≤ 1 s", profile: "realistic", n: 100, nodes: 10, pools: true, measure: readyPercentile(99), limit: 1,
		best: bestPercentile(99)},
	{what: "≥ 50 pods/s", profile: "zero", n: 100, nodes: 10, limit: 50, atLeast: true,
		measure: func(r AIOResult) (float64, string, bool) {
			return r.PodsPerSecond(), fmt.Sprintf("%.2f pods/s", r.PodsPerSecond()), r.Ready > 0
		},
		best: func(r AIOResult, perPod float64) float64 { return float64(r.CPU.CPUs) / perPod }},
	{what: "controller peak RSS ≤ 60 MiB", profile: "zero", n: 1000, nodes: 50, limit: 60,
		measure: func(r AIOResult) (float64, string, bool) {
			return mib(r.Controll.Peak), fmt.Sprintf("%.1f MiB", mib(r.Controll.Peak)), r.Controll.Peak > 0
		}},
}

// readyPercentile measures the p-th percentile of network-ready (pod
// created → CNI ADD returned), in seconds.
func readyPercentile(p float64) func(AIOResult) (float64, string, bool) {
	return func(r AIOResult) (float64, string, bool) {
		v := spans[len(spans)-1].values(r.Pods)
		if len(v) == 0 {
			return 0, "", false
		}
		d := Percentile(v, p)
		return d.Seconds(), dur(d), true
	}
}

// kubernetesProcesses are the all-in-one's processes of Kubernetes itself
// (as watchedProcesses names them): what a pod costs them is not
// kuryr-dpdk's to cut.
var kubernetesProcesses = []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"}

// kubernetesCPUPerPod is the CPU seconds Kubernetes' own processes used
// over r's window per ready pod; ok is false when r has no CPU reading of
// them or no pod ready.
func (r AIOResult) kubernetesCPUPerPod() (perPod float64, ok bool) {
	var s float64
	for _, p := range r.CPU.Processes {
		if slices.Contains(kubernetesProcesses, p.Name) {
			s += p.Seconds
		}
	}
	if s <= 0 || r.Ready == 0 || r.CPU.CPUs == 0 {
		return 0, false
	}
	return s / float64(r.Ready), true
}

// bestPercentile is the p-th percentile of network-ready the machine
// allows for N pods created at once when Kubernetes' processes spend
// perPod CPU seconds on each: the pod that makes the percentile is ready
// no sooner than its own and the earlier pods' share of that CPU, spread
// over every CPU. An estimate: it takes the run's CPU per pod as fixed,
// and some of it (Events, status writes) comes after a pod is ready.
func bestPercentile(p float64) func(AIOResult, float64) float64 {
	return func(r AIOResult, perPod float64) float64 {
		k := math.Ceil(p / 100 * float64(r.N))
		return k * perPod / float64(r.CPU.CPUs)
	}
}

// bestText says a target's best value on the run's machine, and whether
// the target is out of reach there.
func (t aioTarget) bestText(r AIOResult) string {
	perPod, ok := r.kubernetesCPUPerPod()
	if t.best == nil || !ok {
		return "–"
	}
	v := t.best(r, perPod)
	var s string
	if t.atLeast {
		s = fmt.Sprintf("≤ %.1f pods/s", v)
	} else {
		s = "≥ " + dur(time.Duration(v*float64(time.Second)))
	}
	s += fmt.Sprintf(" (%.0f ms of CPU per pod, %d CPUs)", perPod*1000, r.CPU.CPUs)
	if t.atLeast && v < t.limit || !t.atLeast && v > t.limit {
		s += ": out of reach here"
	}
	return s
}

// where names the runs a target is read on.
func (t aioTarget) where() string {
	s := fmt.Sprintf("%s N=%d over %d nodes", t.profile, t.n, t.nodes)
	if t.pools {
		s += ", warm DPDK pools"
	}
	return s
}

// run returns the first result the target is read on.
func (t aioTarget) run(results []AIOResult) (AIOResult, bool) {
	for _, r := range results {
		if r.Profile == t.profile && r.N == t.n && r.Nodes == t.nodes && (!t.pools || r.DPDKPool.Max > 0) {
			return r, true
		}
	}
	return AIOResult{}, false
}

// writeAIOTargets writes each target beside what the runs measured:
// met, missed, or not run.
func writeAIOTargets(b *strings.Builder, results []AIOResult) {
	b.WriteString("\nTargets (issue 14; read here, not asserted). The last column is the best the machine allows if kuryr-dpdk, " +
		"the stand-ins and the CNI plugins cost nothing: Kubernetes' own processes (" + strings.Join(kubernetesProcesses, ", ") +
		") at the CPU per pod they used in the run, over all its CPUs (an estimate).\n\n" +
		"| target | read on | run | measured | | best here, from Kubernetes' CPU per pod |\n| --- | --- | --- | ---: | --- | --- |\n")
	for _, t := range aioTargets {
		r, ok := t.run(results)
		if !ok {
			how := ""
			if t.pools {
				how = " (with KURYR_BENCH_DPDK_POOL)"
			}
			fmt.Fprintf(b, "| %s | %s | – | – | not run%s | – |\n", t.what, t.where(), how)
			continue
		}
		v, text, has := t.measure(r)
		verdict := "missed"
		if has && (t.atLeast && v >= t.limit || !t.atLeast && v <= t.limit) {
			verdict = "met"
		}
		if !has {
			text = "–"
		}
		if r.TimedOut {
			verdict += fmt.Sprintf(" (run timed out: %d/%d ready)", r.Ready, r.N)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", t.what, t.where(), r.RunName(), text, verdict, t.bestText(r))
	}
}
