package bench

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

const phaseText = `# HELP kuryr_daemon_cni_phase_seconds x
# TYPE kuryr_daemon_cni_phase_seconds histogram
kuryr_daemon_cni_phase_seconds_bucket{phase="bind",le="0.001"} 0
kuryr_daemon_cni_phase_seconds_bucket{phase="bind",le="0.002"} 1
kuryr_daemon_cni_phase_seconds_bucket{phase="bind",le="0.004"} 3
kuryr_daemon_cni_phase_seconds_bucket{phase="bind",le="+Inf"} 4
kuryr_daemon_cni_phase_seconds_sum{phase="bind"} 0.5
kuryr_daemon_cni_phase_seconds_count{phase="bind"} 4
kuryr_daemon_cni_phase_seconds_bucket{phase="netlink",le="0.001"} 2
kuryr_daemon_cni_phase_seconds_bucket{phase="netlink",le="0.002"} 2
kuryr_daemon_cni_phase_seconds_bucket{phase="netlink",le="0.004"} 2
kuryr_daemon_cni_phase_seconds_bucket{phase="netlink",le="+Inf"} 2
kuryr_daemon_cni_phase_seconds_sum{phase="netlink"} 0.001
kuryr_daemon_cni_phase_seconds_count{phase="netlink"} 2
kuryr_daemon_cni_request_duration_seconds_count{verb="ADD"} 9
`

func TestParseHistogramsAndQuantile(t *testing.T) {
	hs, err := parseHistograms(strings.NewReader(phaseText), "kuryr_daemon_cni_phase_seconds", "phase")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 {
		t.Fatalf("got %d histograms, want bind and netlink: %v", len(hs), hs)
	}
	b := hs["bind"]
	if b.Count != 4 || b.Sum != 0.5 || len(b.Bounds) != 4 {
		t.Fatalf("bind = %+v", b)
	}
	if b.Mean() != 125*time.Millisecond {
		t.Errorf("mean = %s, want 125ms", b.Mean())
	}
	for _, c := range []struct {
		p    float64
		want float64
	}{{25, 0.002}, {50, 0.004}, {75, 0.004}, {100, math.Inf(1)}} {
		if got := b.Quantile(c.p); got != c.want {
			t.Errorf("p%.0f = %g, want %g", c.p, got, c.want)
		}
	}
	sum := hs["bind"].Add(hs["netlink"])
	if sum.Count != 6 || sum.Cumulative[0] != 2 || sum.Cumulative[3] != 6 {
		t.Errorf("sum = %+v", sum)
	}
	if (Histogram{}).Add(b).Count != 4 {
		t.Error("adding to an empty histogram lost the counts")
	}
}

func TestSpansSkipMissingTimestamps(t *testing.T) {
	t0 := time.Now()
	pods := []PodTimes{
		{Created: t0, AddStart: t0.Add(10 * time.Millisecond), AddDone: t0.Add(110 * time.Millisecond),
			Active: map[string]time.Time{"eth0": t0.Add(20 * time.Millisecond), "net1": t0.Add(30 * time.Millisecond), "dpdk0": t0.Add(90 * time.Millisecond)}},
		{Created: t0, Active: map[string]time.Time{"eth0": t0.Add(5 * time.Millisecond)}},
	}
	ready := spans[len(spans)-1].values(pods)
	if len(ready) != 1 || ready[0] != 110*time.Millisecond {
		t.Errorf("network-ready = %v, want [110ms]", ready)
	}
	if got := pods[0].AllActive(3).Sub(t0); got != 90*time.Millisecond {
		t.Errorf("all active at %s, want 90ms", got)
	}
	if !pods[1].AllActive(3).IsZero() {
		t.Error("a pod with one of three interfaces Active counted as all Active")
	}
}

func TestWrap(t *testing.T) {
	got := wrap("pod created → CNI ADD started", 16)
	if strings.Join(got, "|") != "pod created →|CNI ADD started" {
		t.Errorf("wrap = %q", got)
	}
}

// TestAIOTargets: each target is read on its own run (the realistic ones
// only on a run with DPDK pools, even when an unpooled one of the same
// size comes first) and says met or missed against its limit, or not run.
func TestAIOTargets(t *testing.T) {
	t0 := time.Now()
	pods := func(n int, slow int, fast, late time.Duration) []PodTimes {
		var out []PodTimes
		for i := range n {
			d := fast
			if i < slow {
				d = late
			}
			out = append(out, PodTimes{Created: t0, AddDone: t0.Add(d)})
		}
		return out
	}
	results := []AIOResult{
		{Profile: "realistic", N: 100, Nodes: 10, Ready: 100, Pods: pods(100, 0, 50*time.Millisecond, 0)},
		{Profile: "realistic", N: 100, Nodes: 10, Ready: 100, DPDKPool: aio.PoolSize{Min: 14, Max: 14, Batch: 14},
			Pods: pods(100, 2, 200*time.Millisecond, 1500*time.Millisecond)},
		{Profile: "zero", N: 100, Nodes: 10, Ready: 100, Wall: time.Second, Pods: pods(100, 0, time.Second, 0)},
	}
	var b strings.Builder
	writeAIOTargets(&b, results)
	out := b.String()
	for _, want := range []string{
		"| network-ready p50 ≤ 300 ms | realistic N=100 over 10 nodes, warm DPDK pools | realistic N=100 (10 nodes, DPDK pools 14) | 200 ms | met | – |",
		"| network-ready p99 ≤ 1 s | realistic N=100 over 10 nodes, warm DPDK pools | realistic N=100 (10 nodes, DPDK pools 14) | 1500 ms | missed | – |",
		"| ≥ 50 pods/s | zero N=100 over 10 nodes | zero N=100 (10 nodes) | 100.00 pods/s | met | – |",
		"| controller peak RSS ≤ 60 MiB | zero N=1000 over 50 nodes | – | – | not run | – |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("targets lack %q:\n%s", want, out)
		}
	}
	// Without a pooled run the realistic targets are not run, whatever
	// the unpooled run measured.
	b.Reset()
	writeAIOTargets(&b, results[:1])
	if !strings.Contains(b.String(), "| network-ready p50 ≤ 300 ms | realistic N=100 over 10 nodes, warm DPDK pools | – | – | not run (with KURYR_BENCH_DPDK_POOL) | – |") {
		t.Errorf("an unpooled run was read for a pooled target:\n%s", b.String())
	}
}

// TestAIOTargetsBestHere: a run with CPU readings says beside each latency
// and rate target the best value its machine allows from Kubernetes' own
// processes' CPU per ready pod (kube-apiserver, etcd, controller-manager,
// scheduler; not kuryr-dpdk's, the stand-ins' or the CNI plugins'), and
// whether the target is out of reach there.
func TestAIOTargetsBestHere(t *testing.T) {
	t0 := time.Now()
	var pods []PodTimes
	for range 100 {
		pods = append(pods, PodTimes{Created: t0, AddDone: t0.Add(5 * time.Second)})
	}
	cpu := func(apiserver float64) CPUUse {
		return CPUUse{Window: 10 * time.Second, CPUs: 2, Processes: []ProcessCPU{
			{Name: "kube-apiserver", Count: 1, Seconds: apiserver}, {Name: "kuryr-daemon", Count: 10, Seconds: 3.7},
			{Name: "etcd", Count: 1, Seconds: 0.8}, {Name: "kube-controller-manager", Count: 1, Seconds: 0.6},
			{Name: "kuryr-controller", Count: 1, Seconds: 1.4}, {Name: "kube-scheduler", Count: 1, Seconds: 0.4},
		}}
	}
	pool := aio.PoolSize{Min: 14, Max: 14, Batch: 14}
	results := []AIOResult{
		// 7.4 + 0.8 + 0.6 + 0.4 = 9.2 s for 100 pods: 92 ms per pod.
		{Profile: "realistic", N: 100, Nodes: 10, Ready: 100, DPDKPool: pool, Pods: pods, CPU: cpu(7.4)},
		{Profile: "zero", N: 100, Nodes: 10, Ready: 100, Wall: 10 * time.Second, Pods: pods, CPU: cpu(7.4)},
	}
	var b strings.Builder
	writeAIOTargets(&b, results)
	for _, want := range []string{
		// The 50th pod: 50 × 92 ms over 2 CPUs.
		"| 5000 ms | missed | ≥ 2300 ms (92 ms of CPU per pod, 2 CPUs): out of reach here |",
		"| 5000 ms | missed | ≥ 4554 ms (92 ms of CPU per pod, 2 CPUs): out of reach here |",
		"| 10.00 pods/s | missed | ≤ 21.7 pods/s (92 ms of CPU per pod, 2 CPUs): out of reach here |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("targets lack %q:\n%s", want, b.String())
		}
	}
	// Kubernetes cheap enough: the best is in reach, the target is only
	// missed.
	results[1].CPU = cpu(0.1) // 1.9 s: 19 ms per pod, 105 pods/s
	b.Reset()
	writeAIOTargets(&b, results[1:])
	if want := "| 10.00 pods/s | missed | ≤ 105.3 pods/s (19 ms of CPU per pod, 2 CPUs) |"; !strings.Contains(b.String(), want) {
		t.Errorf("targets lack %q:\n%s", want, b.String())
	}
	// No reading of Kubernetes' processes (results written before CPU
	// was recorded): nothing is claimed.
	results[1].CPU = CPUUse{}
	b.Reset()
	writeAIOTargets(&b, results[1:])
	if want := "| 10.00 pods/s | missed | – |"; !strings.Contains(b.String(), want) {
		t.Errorf("targets lack %q:\n%s", want, b.String())
	}
}

// TestAIOPooledNamed: a run's name and pools column say which interfaces
// took warm pools: every one (Pooled all of benchIfaces), dpdk0 alone, or
// dpdk0 for results written before Pooled was recorded; "off" without.
func TestAIOPooledNamed(t *testing.T) {
	size := aio.PoolSize{Min: 3, Max: 3, Batch: 3}
	for _, c := range []struct {
		r          AIOResult
		name, pool string
	}{
		{AIOResult{Profile: "realistic", N: 10, Nodes: 2, DPDKPool: size, Pooled: benchIfaces, PoolWarm: 1500 * time.Millisecond},
			"realistic N=10 (2 nodes, pools 3)", "eth0, net1, dpdk0: 3/node each, warm in 1.5 s"},
		{AIOResult{Profile: "realistic", N: 10, Nodes: 2, DPDKPool: size, Pooled: []string{"dpdk0"}, PoolWarm: time.Second},
			"realistic N=10 (2 nodes, DPDK pools 3)", "dpdk0: 3/node each, warm in 1.0 s"},
		{AIOResult{Profile: "realistic", N: 10, Nodes: 2, DPDKPool: size, PoolWarm: time.Second},
			"realistic N=10 (2 nodes, DPDK pools 3)", "dpdk0: 3/node each, warm in 1.0 s"},
		{AIOResult{Profile: "zero", N: 1, Nodes: 1}, "zero N=1 (1 nodes)", "off"},
	} {
		if got, pools := c.r.RunName(), c.r.pools(); got != c.name || pools != c.pool {
			t.Errorf("pooled %v: name %q, pools %q; want %q, %q", c.r.Pooled, got, pools, c.name, c.pool)
		}
	}
}

// TestAIOReportSaysWhetherProfiled: a run's section says whether its
// processes served profiles, which count in the controller's RSS; results
// written before the field was recorded were all profiled.
func TestAIOReportSaysWhetherProfiled(t *testing.T) {
	for _, c := range []struct {
		unprofiled bool
		want, not  string
	}{
		{true, "Run without profiling", "Run with profiling"},
		{false, "Run with profiling", "Run without profiling"},
	} {
		var b strings.Builder
		if err := WriteAIOMarkdown(&b, []AIOResult{{Profile: "zero", N: 1, Nodes: 1, Unprofiled: c.unprofiled}}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), c.want) || strings.Contains(b.String(), c.not) {
			t.Errorf("Unprofiled %v: the report lacks %q or has %q:\n%s", c.unprofiled, c.want, c.not, b.String())
		}
	}
}
