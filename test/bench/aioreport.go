package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Goals of the all-in-one bench (issue 8; read, not asserted).
const GoalDaemonMB = 30.0

// span is one per-pod interval: from one timestamp to another.
type span struct {
	name     string
	from, to func(p PodTimes) time.Time
}

var spans = []span{
	{"pod created → KuryrPod seen", created, func(p PodTimes) time.Time { return p.KuryrPod }},
	{"pod created → eth0 Active", created, activeOf("eth0")},
	{"pod created → net1 Active", created, activeOf("net1")},
	{"pod created → dpdk0 Active", created, activeOf("dpdk0")},
	{"KuryrPod seen → all Active", func(p PodTimes) time.Time { return p.KuryrPod }, allActive},
	{"pod created → CNI ADD started", created, func(p PodTimes) time.Time { return p.AddStart }},
	{"all Active → CNI ADD returned", allActive, addDone},
	{"CNI ADD (started → returned)", func(p PodTimes) time.Time { return p.AddStart }, addDone},
	{"network-ready (created → ADD returned)", created, addDone},
}

func created(p PodTimes) time.Time   { return p.Created }
func addDone(p PodTimes) time.Time   { return p.AddDone }
func allActive(p PodTimes) time.Time { return p.AllActive(len(benchIfaces)) }
func activeOf(ifName string) func(PodTimes) time.Time {
	return func(p PodTimes) time.Time { return p.Active[ifName] }
}

// values returns s over the pods that have both ends.
func (s span) values(pods []PodTimes) []time.Duration {
	var out []time.Duration
	for _, p := range pods {
		a, b := s.from(p), s.to(p)
		if !a.IsZero() && !b.IsZero() {
			out = append(out, b.Sub(a))
		}
	}
	return out
}

// RunName is "zero N=10 (2 nodes)", or "realistic N=100 (10 nodes, DPDK
// pools 14)" for a run with warm pools of that size per node for dpdk0
// alone, "pools 14" for every interface (pooled).
func (r AIOResult) RunName() string {
	if r.DPDKPool.Max > 0 && slices.Equal(r.pooled(), benchIfaces) {
		return fmt.Sprintf("%s N=%d (%d nodes, pools %s)", r.Profile, r.N, r.Nodes, r.poolSize())
	}
	if r.DPDKPool.Max > 0 {
		return fmt.Sprintf("%s N=%d (%d nodes, DPDK pools %s)", r.Profile, r.N, r.Nodes, r.poolSize())
	}
	return fmt.Sprintf("%s N=%d (%d nodes)", r.Profile, r.N, r.Nodes)
}

// poolSize is "14" (min = max = batch) or "min 4, max 8, batch 2".
func (r AIOResult) poolSize() string {
	p := r.DPDKPool
	if p.Min == p.Max && p.Max == p.Batch {
		return fmt.Sprint(p.Max)
	}
	return fmt.Sprintf("min %d, max %d, batch %d", p.Min, p.Max, p.Batch)
}

// pooled are the interfaces whose ports came from warm pools: dpdk0
// alone in results written before Pooled was recorded.
func (r AIOResult) pooled() []string {
	if r.DPDKPool.Max == 0 || len(r.Pooled) > 0 {
		return r.Pooled
	}
	return []string{"dpdk0"}
}

// pools is the table's pools column: "off", or the pooled interfaces,
// each node's pool size per interface and how long the pools took to
// fill.
func (r AIOResult) pools() string {
	if r.DPDKPool.Max == 0 {
		return "off"
	}
	return fmt.Sprintf("%s: %s/node each, warm in %.1f s", strings.Join(r.pooled(), ", "), r.poolSize(), r.PoolWarm.Seconds())
}

// PodsPerSecond is ready pods over the wall time.
func (r AIOResult) PodsPerSecond() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Ready) / r.Wall.Seconds()
}

// CallsPerPod is all OpenStack calls (Keystone included) over N.
func (r AIOResult) CallsPerPod() float64 {
	n := int64(0)
	for _, v := range r.CloudOps {
		n += v
	}
	return float64(n) / float64(r.N)
}

func pct(ds []time.Duration) string {
	if len(ds) == 0 {
		return "– | – | – | –"
	}
	return fmt.Sprintf("%s | %s | %s | %s", dur(Percentile(ds, 50)), dur(Percentile(ds, 90)), dur(Percentile(ds, 99)), dur(Percentile(ds, 100)))
}

// dur writes d in ms below 10 s, else in seconds.
func dur(d time.Duration) string {
	if d < 10*time.Second {
		return ms(d)
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func bound(s float64) string {
	if math.IsInf(s, 1) {
		return "> last bucket"
	}
	return "≤ " + dur(seconds(s))
}

// WriteAIOMarkdown writes the summary of every run, then each run's phases.
func WriteAIOMarkdown(w io.Writer, results []AIOResult) error {
	var b strings.Builder
	if len(results) > 0 {
		fmt.Fprintf(&b, "Machine: %s.\n\n", results[0].Machine)
	}
	b.WriteString("| run | pools | ready | env start | wall | pods/s | network-ready p50 | p90 | p99 | max | OpenStack calls/pod | controller VmHWM | daemon VmHWM node-1 (max of all) | load avg start → end |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		nr := spans[len(spans)-1].values(r.Pods)
		to := ""
		if r.TimedOut {
			to = " (timed out)"
		}
		fmt.Fprintf(&b, "| %s | %s | %d/%d%s | %.1f s | %s | %.2f | %s | %.1f | %.1f MiB | %.1f MiB (%.1f) | %s → %s |\n",
			r.RunName(), r.pools(), r.Ready, r.N, to, r.StartUp.Seconds(), dur(r.Wall), r.PodsPerSecond(), pct(nr), r.CallsPerPod(),
			mib(r.Controll.Peak), mib(r.Daemon.Peak), mib(r.DaemonMax), r.LoadAvg[0], r.LoadAvg[1])
	}
	fmt.Fprintf(&b, "\nGoals: controller RSS ≤ %.0f MB, daemon RSS ≤ %.0f MB (VmHWM, MiB above).\n", GoalControllerMB, GoalDaemonMB)
	writeAIOTargets(&b, results)

	for _, r := range results {
		fmt.Fprintf(&b, "\n### %s\n\nPer pod, from timestamps (client side, a KuryrPod watch, the kubelet stand-in):\n\n", r.RunName())
		b.WriteString("| interval | pods | p50 | p90 | p99 | max |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
		for _, s := range spans {
			v := s.values(r.Pods)
			fmt.Fprintf(&b, "| %s | %d | %s |\n", s.name, len(v), pct(v))
		}
		if len(r.CPUProfiles) > 0 {
			fmt.Fprintf(&b, "\nCPU profiles of the %d s from the first pod create (`go tool pprof -top FILE`): %s.\n",
				r.CPUSeconds, strings.Join(r.CPUProfiles, ", "))
		}
		fmt.Fprintf(&b, "\nAt the end: controller RSS %.1f MiB (anon %.1f + file %.1f), Go heap in use %.1f MiB, %.0f goroutines; "+
			"node-1 daemon RSS %.1f MiB (anon %.1f + file %.1f).\n", mib(r.Controll.RSS), mib(r.Controll.Anon), mib(r.Controll.File),
			r.ControllerHeapInuse/(1<<20), r.ControllerGoroutines, mib(r.Daemon.RSS), mib(r.Daemon.Anon), mib(r.Daemon.File))
		if r.Unprofiled {
			b.WriteString("Run without profiling (`--pprof=false`): the memory above is the processes' own.\n")
		} else {
			b.WriteString("Run with profiling: the controller's RSS includes what serving its CPU and heap profiles costs (`--pprof=false` runs without).\n")
		}
		if r.ControllerPeakAt > 0 {
			fmt.Fprintf(&b, "The controller's RSS was highest %.1f s after the first pod create (sampled every %s)", r.ControllerPeakAt.Seconds(), peakSampleEvery)
			if r.PeakHeapProfile != "" {
				fmt.Fprintf(&b, "; its heap then: %s", r.PeakHeapProfile)
			}
			b.WriteString(".\n")
		}
		if failed := failedAdds(r.Pods); failed != "" {
			fmt.Fprintf(&b, "\nPods with a failed ADD (the kubelet stand-in retried it; their last error): %s.\n", failed)
		}
		if r.ControllerLoad.Requests != nil {
			fmt.Fprintf(&b, "\nThe controller from the first pod create to the last ADD's return (its /metrics): %s.\n", r.ControllerLoad)
		}
		if r.CPU.Window > 0 {
			fmt.Fprintf(&b, "\nThe machine's CPU from the first pod create to the last ADD's return (/proc): %s.\n", r.CPU)
		}
		if len(r.APIServer) > 0 {
			fmt.Fprintf(&b, "\nkube-apiserver over the same window (its /metrics; every client), by kind, with the seconds it spent on them: %s.\n",
				apiRequestsString(r.APIServer))
		}
		if len(r.VMErrors) > 0 {
			b.WriteString("\nWhat went wrong in the simulated node VMs:\n\n")
			for _, e := range r.VMErrors {
				fmt.Fprintf(&b, "- %s\n", e)
			}
		}
		b.WriteString("\nInside the CNI ADD, from the daemons' `kuryr_daemon_cni_phase_seconds` histograms summed over all daemons " +
			"(per observation, not per pod; percentiles are bucket upper bounds, the buckets double):\n\n")
		b.WriteString("| phase | observations | mean | p50 | p90 | p99 |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
		for _, ph := range []string{"wait_interfaces", "wait_device", "bind", "netlink", "report"} {
			h := r.Phases[ph]
			fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s |\n", ph, h.Count, dur(h.Mean()), bound(h.Quantile(50)), bound(h.Quantile(90)), bound(h.Quantile(99)))
		}
		fmt.Fprintf(&b, "| whole ADD (`kuryr_daemon_cni_request_duration_seconds`) | %.0f | %s | %s | %s | %s |\n",
			r.ADD.Count, dur(r.ADD.Mean()), bound(r.ADD.Quantile(50)), bound(r.ADD.Quantile(90)), bound(r.ADD.Quantile(99)))
	}

	b.WriteString("\nOpenStack calls per pod by kind (cloudsim's counts over the run, Keystone included):\n\n| call |")
	ops := map[string]bool{}
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.RunName())
		for op := range r.CloudOps {
			ops[op] = true
		}
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(results)) + "\n")
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		fmt.Fprintf(&b, "| `%s` |", op)
		for _, r := range results {
			if v := r.CloudOps[op]; v > 0 {
				fmt.Fprintf(&b, " %.2f |", float64(v)/float64(r.N))
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteAIOSVG draws, for one run, p50/p90/p99/max of the main per-pod
// intervals and of the ADD phases (histogram p50/p90 bounds and mean) on
// a log scale.
func WriteAIOSVG(w io.Writer, r AIOResult) error {
	type group struct {
		name string
		vals []float64 // ms: p50 p90 p99 max
	}
	var groups []group
	for _, i := range []int{0, 4, 5, 7, 8} {
		v := spans[i].values(r.Pods)
		groups = append(groups, group{spans[i].name, []float64{msOf(Percentile(v, 50)), msOf(Percentile(v, 90)), msOf(Percentile(v, 99)), msOf(Percentile(v, 100))}})
	}
	for _, ph := range []string{"wait_interfaces", "wait_device", "bind", "netlink"} {
		h := r.Phases[ph]
		groups = append(groups, group{"ADD: " + ph + " (hist.)", []float64{1000 * h.Quantile(50), 1000 * h.Quantile(90), 1000 * h.Quantile(99), 0}})
	}
	const (
		width, height = 980, 420
		left, right   = 70, 20
		top, bottom   = 50, 110
		barW, barGap  = 18, 3
		plotH         = height - top - bottom
		plotW         = width - left - right
	)
	colors := []string{"#4c78a8", "#f58518", "#e45756", "#72b7b2"}
	names := []string{"p50", "p90", "p99", "max"}
	lo, hi := 1.0, 10.0
	for _, g := range groups {
		for _, v := range g.vals {
			if v > 0 && !math.IsInf(v, 1) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	lo, hi = decadeFloor(lo), decadeFloor(hi)*10
	y := func(v float64) float64 {
		v = min(max(v, lo), hi)
		return float64(top) + float64(plotH)*(1-math.Log10(v/lo)/math.Log10(hi/lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left,
		xmlEscape(fmt.Sprintf("all-in-one, %s: %d/%d pods ready, wall %s, %.2f pods/s", r.RunName(), r.Ready, r.N, dur(r.Wall), r.PodsPerSecond())))
	for v := lo; v <= hi*1.001; v *= 10 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, axisLabel(v))
	}
	gw := float64(plotW) / float64(len(groups))
	for i, g := range groups {
		gx := float64(left) + gw*float64(i) + (gw-float64(len(names)*(barW+barGap)))/2
		for j, v := range g.vals {
			if v <= 0 || math.IsInf(v, 1) {
				continue
			}
			x := gx + float64(j*(barW+barGap))
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.0f ms</title></rect>`+"\n",
				x, y(v), barW, y(lo)-y(v), colors[j], xmlEscape(g.name), names[j], v)
		}
		cx := float64(left) + gw*(float64(i)+0.5)
		for k, line := range wrap(g.name, 16) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", cx, height-bottom+16+14*k, xmlEscape(line))
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, width-right, y(lo), y(lo))
	for j, n := range names {
		x := left + 10 + j*70
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, height-20, colors[j], x+16, height-10, n)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">per pod from timestamps; "hist." = daemons' histogram bucket bounds (no max)</text>`+"\n", left+300, height-10)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// wrap splits s into lines of about n characters at spaces.
func wrap(s string, n int) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > n {
			lines = append(lines, cur)
			cur = w
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	return append(lines, cur)
}

// failedAdds says how many pods had a failed ADD, with the last error of
// up to three of them; "" when none.
func failedAdds(pods []PodTimes) string {
	n := 0
	var some []string
	for _, p := range pods {
		if p.LastAddError == "" {
			continue
		}
		n++
		if len(some) < 3 {
			some = append(some, fmt.Sprintf("%s: %q", p.Name, p.LastAddError))
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d pods, e.g. %s", n, strings.Join(some, "; "))
}
