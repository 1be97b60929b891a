package bench

import (
	"fmt"
	"strings"
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
}

// aioTargets are issue 14's targets for the all-in-one bench.
var aioTargets = []aioTarget{
	{what: "network-ready p50 ≤ 300 ms", profile: "realistic", n: 100, nodes: 10, pools: true, measure: readyPercentile(50), limit: 0.3},
	{what: "network-ready p99 ≤ 1 s", profile: "realistic", n: 100, nodes: 10, pools: true, measure: readyPercentile(99), limit: 1},
	{what: "≥ 50 pods/s", profile: "zero", n: 100, nodes: 10, limit: 50, atLeast: true,
		measure: func(r AIOResult) (float64, string, bool) {
			return r.PodsPerSecond(), fmt.Sprintf("%.2f pods/s", r.PodsPerSecond()), r.Ready > 0
		}},
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
	b.WriteString("\nTargets (issue 14; read here, not asserted):\n\n| target | read on | run | measured | |\n| --- | --- | --- | ---: | --- |\n")
	for _, t := range aioTargets {
		r, ok := t.run(results)
		if !ok {
			how := ""
			if t.pools {
				how = " (with KURYR_BENCH_DPDK_POOL)"
			}
			fmt.Fprintf(b, "| %s | %s | – | – | not run%s |\n", t.what, t.where(), how)
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
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t.what, t.where(), r.RunName(), text, verdict)
	}
}
