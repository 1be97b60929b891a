package bench

import (
	"math"
	"strings"
	"testing"
	"time"
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
