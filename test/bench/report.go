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

// Goals the real-Neutron numbers are read against (issue 8; not asserted).
const (
	GoalLatencyN1    = 500 * time.Millisecond
	GoalCallsPerPod  = 4.0
	GoalControllerMB = 40.0
)

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Requests returns the number of Neutron requests in r's window.
func (r Result) RequestCount() int {
	n := 0
	for _, s := range r.Neutron {
		n += s.Count
	}
	return n
}

// MetricRequests returns the controller's own count of its requests.
func (r Result) MetricRequests() float64 {
	n := 0.0
	for _, v := range r.Metrics {
		n += v
	}
	return n
}

// NeutronBusy is the server time summed over the window's requests.
func (r Result) NeutronBusy() time.Duration {
	var d time.Duration
	for _, s := range r.Neutron {
		d += s.Busy
	}
	return d
}

// metricsPerPod is the controller's own count of requests per pod, "–"
// for a controller without that metric (kuryr-kubernetes).
func metricsPerPod(r Result) string {
	if len(r.Metrics) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", r.MetricRequests()/float64(r.N))
}

// WriteMarkdown writes the result tables.
func WriteMarkdown(w io.Writer, results []Result) error {
	var b strings.Builder
	b.WriteString("| round | N | p50 | p90 | max | wall | Neutron req/pod (log) | req/pod (controller metrics) | controller RSS now / peak (anon + file; Go heap in use) | load avg start → end |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %.2f | %s | %.1f / %.1f MiB (%.1f + %.1f; %.1f MiB) | %s → %s |\n",
			r.Name, r.N, ms(Percentile(r.Latency, 50)), ms(Percentile(r.Latency, 90)), ms(Percentile(r.Latency, 100)),
			ms(r.Wall), float64(r.RequestCount())/float64(r.N), metricsPerPod(r), mib(r.Memory.RSS), mib(r.Memory.Peak),
			mib(r.Memory.Anon), mib(r.Memory.File), r.HeapInuse/(1<<20), r.LoadAvg[0], r.LoadAvg[1])
	}

	b.WriteString("\nNeutron requests per pod by kind (from neutron-server's log; in brackets the mean server time per request):\n\n")
	ops := map[string]bool{}
	for _, r := range results {
		for op := range r.Neutron {
			ops[op] = true
		}
	}
	b.WriteString("| request |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.Name)
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(results)) + "\n")
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		fmt.Fprintf(&b, "| `%s` |", op)
		for _, r := range results {
			s := r.Neutron[op]
			if s.Count == 0 {
				b.WriteString(" – |")
				continue
			}
			errs := ""
			if s.Errors > 0 {
				errs = fmt.Sprintf(", %d non-2xx", s.Errors)
			}
			fmt.Fprintf(&b, " %.2f (%s%s) |", float64(s.Count)/float64(r.N), ms(s.Busy/time.Duration(s.Count)), errs)
		}
		b.WriteString("\n")
	}

	b.WriteString("\nController's `kuryr_openstack_requests_total` per pod by kind (cross-check):\n\n")
	mops := map[string]bool{}
	for _, r := range results {
		for op := range r.Metrics {
			mops[op] = true
		}
	}
	b.WriteString("| request |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.Name)
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(results)) + "\n")
	for _, op := range slices.Sorted(maps.Keys(mops)) {
		fmt.Fprintf(&b, "| `%s` |", op)
		for _, r := range results {
			if v := r.Metrics[op]; v > 0 {
				fmt.Fprintf(&b, " %.2f |", v/float64(r.N))
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\nWhere the time goes (window = first create to last ready):\n\n")
	b.WriteString("| round | pod → its KuryrPod (ours) or KuryrPort (kuryr-kubernetes) p50 / max | first Neutron request ends at | wall | Neutron serving us (share of wall) | max in flight | Neutron server time (sum) | CPU s: neutron-server | CPU s: mariadb | CPU s: controller | release wall (req) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		first := "–"
		if len(r.Requests) > 0 {
			first = ms(r.Requests[0].At.Sub(r.Start))
		}
		share, inFlight := Coverage(r.Requests, r.Start, r.Start.Add(r.Wall))
		fmt.Fprintf(&b, "| %s | %s / %s | %s | %s | %.0f%% | %d | %s | %.2f | %.2f | %.2f | %s (%d) |\n", r.Name,
			ms(Percentile(r.Planned, 50)), ms(Percentile(r.Planned, 100)), first, ms(r.Wall), 100*share, inFlight, ms(r.NeutronBusy()),
			r.CPU["neutron-server"], r.CPU["mariadb"], r.CPU["controller"], ms(r.ReleaseWall), r.ReleaseRequests)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSVG draws latency p50/p90/max per round as grouped bars on a log
// scale, with the N=1 goal as a line and wall time and Neutron requests
// per pod under each group.
func WriteSVG(w io.Writer, title string, results []Result) error {
	const (
		width, height = 720, 380
		left, right   = 70, 20
		top, bottom   = 50, 80
		barW, barGap  = 34, 6
		plotH         = height - top - bottom
		plotW         = width - left - right
	)
	series := []struct {
		name  string
		p     float64
		color string
	}{{"p50", 50, "#4c78a8"}, {"p90", 90, "#f58518"}, {"max", 100, "#e45756"}}
	// A log scale: N=1 (sub-second) and N=50 (tens of seconds) on one chart.
	lo, hi := float64(GoalLatencyN1)/float64(time.Millisecond), float64(GoalLatencyN1)/float64(time.Millisecond)
	for _, r := range results {
		for _, s := range series {
			v := float64(Percentile(r.Latency, s.p)) / float64(time.Millisecond)
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	b, y := logChart(title, width, height, left, right, top, bottom, lo, hi)
	goal := float64(GoalLatencyN1) / float64(time.Millisecond)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#54a24b" stroke-dasharray="6 4"/>`+"\n", left, width-right, y(goal), y(goal))
	fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#54a24b">goal N=1: %.0f ms</text>`+"\n", width-right, y(goal)-4, goal)
	group := float64(plotW) / float64(max(1, len(results)))
	for i, r := range results {
		gx := float64(left) + group*float64(i) + (group-float64(len(series)*(barW+barGap)))/2
		for j, s := range series {
			v := float64(Percentile(r.Latency, s.p)) / float64(time.Millisecond)
			x := gx + float64(j*(barW+barGap))
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.0f ms</title></rect>`+"\n",
				x, y(v), barW, y(0)-y(v), s.color, xmlEscape(r.Name), s.name, v)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.0f</text>`+"\n", x+barW/2, y(v)-3, v)
		}
		cx := float64(left) + group*(float64(i)+0.5)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n", cx, height-bottom+18, xmlEscape(r.Name))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">wall %s</text>`+"\n", cx, height-bottom+34, ms(r.Wall))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%.1f Neutron req/pod</text>`+"\n", cx, height-bottom+50, float64(r.RequestCount())/float64(r.N))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, width-right, y(0), y(0))
	for j, s := range series {
		x := left + 10 + j*80
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, height-20, s.color, x+16, height-10, s.name)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">pod created → KuryrPod all interfaces Active</text>`+"\n", left+260, height-10)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// logChart starts an SVG chart of width × height with title and a log
// scale of milliseconds from the decade at or below lo to the one above hi,
// drawn as a grid between the margins; it returns the chart so far and the
// scale (milliseconds → y).
func logChart(title string, width, height, left, right, top, bottom int, lo, hi float64) (*strings.Builder, func(float64) float64) {
	lo, hi = decadeFloor(lo), decadeFloor(hi)*10
	plotH := height - top - bottom
	y := func(msv float64) float64 {
		msv = max(msv, lo)
		return float64(top) + float64(plotH)*(1-math.Log10(msv/lo)/math.Log10(hi/lo))
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, xmlEscape(title))
	for v := lo; v <= hi*1.001; v *= 10 {
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-right, y(v), y(v))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, axisLabel(v))
	}
	return b, y
}

// axisLabel writes a millisecond value as "100 ms" or "10 s".
func axisLabel(msv float64) string {
	if msv < 1000 {
		return fmt.Sprintf("%g ms", msv)
	}
	return fmt.Sprintf("%g s", msv/1000)
}

// decadeFloor returns the power of ten at or below v (v > 0).
func decadeFloor(v float64) float64 {
	return math.Pow(10, math.Floor(math.Log10(v)))
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
