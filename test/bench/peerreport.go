package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Run is one controller's rounds in a comparison run.
type Run struct {
	// Name says which controller and mode, e.g. "kuryr-kubernetes, pooled".
	Name string
	// Config is how it was started (flags or settings), for the report.
	Config string
	// NotMeasured, when set, says why this run has no results.
	NotMeasured string
	// Error, when set, is why the run stopped before its last round.
	Error   string
	Results []Result
}

// round returns r's round named name.
func (r Run) round(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// WritePeerTable writes one table comparing runs round by round (the
// rounds of runs[0], in its order): latency p50 and p90, wall, Neutron
// requests per pod (from neutron-server's log), the controller's peak RSS
// so far and its RSS at the round's end split into anonymous memory and
// file-backed pages (a Go binary's code and a Python interpreter's heap
// count differently in each), and each run's p50, p90 and wall divided by
// runs[0]'s.
func WritePeerTable(w io.Writer, runs []Run) error {
	if len(runs) == 0 {
		return nil
	}
	base := runs[0]
	var b strings.Builder
	fmt.Fprintf(&b, "| round | controller | p50 | p90 | wall | Neutron req/pod | peak RSS | RSS at the end: anon + file | p50 ÷ %[1]s | p90 ÷ %[1]s | wall ÷ %[1]s |\n", base.Name)
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	ratio := func(a, b time.Duration) string {
		if b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f×", float64(a)/float64(b))
	}
	for _, br := range base.Results {
		for _, run := range runs {
			if run.NotMeasured != "" {
				fmt.Fprintf(&b, "| %s | %s | not measured: %s | | | | | | | | |\n", br.Name, run.Name, run.NotMeasured)
				continue
			}
			r, ok := run.round(br.Name)
			if !ok {
				why := "no such round"
				if run.Error != "" {
					why = "failed: " + strings.ReplaceAll(run.Error, "|", "\\|")
				}
				fmt.Fprintf(&b, "| %s | %s | %s | | | | | | | | |\n", br.Name, run.Name, why)
				continue
			}
			p50, p90 := Percentile(r.Latency, 50), Percentile(r.Latency, 90)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f | %.1f MiB | %.1f + %.1f MiB | %s | %s | %s |\n", r.Name, run.Name,
				ms(p50), ms(p90), ms(r.Wall), float64(r.RequestCount())/float64(r.N), mib(r.Memory.Peak), mib(r.Memory.Anon), mib(r.Memory.File),
				ratio(p50, Percentile(br.Latency, 50)), ratio(p90, Percentile(br.Latency, 90)), ratio(r.Wall, br.Wall))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WritePeerSVG draws the runs side by side: for each round of runs[0], one
// bar per run with its wall time (log scale), labelled with the wall and
// the Neutron requests per pod. Runs not measured or without the round
// leave a gap.
func WritePeerSVG(w io.Writer, title string, runs []Run) error {
	if len(runs) == 0 {
		return nil
	}
	const (
		width, height = 860, 400
		left, right   = 70, 20
		top, bottom   = 50, 90
		barGap        = 6
		plotW         = width - left - right
	)
	colors := []string{"#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"}
	lo, hi := math.Inf(1), 0.0
	for _, run := range runs {
		for _, r := range run.Results {
			if v := float64(r.Wall) / float64(time.Millisecond); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		lo, hi = 100, 1000
	}
	b, y := logChart(title, width, height, left, right, top, bottom, lo, hi)
	rounds := runs[0].Results
	group := float64(plotW) / float64(max(1, len(rounds)))
	barW := (group - 20) / float64(len(runs))
	for i, br := range rounds {
		gx := float64(left) + group*float64(i) + 10
		for j, run := range runs {
			r, ok := run.round(br.Name)
			if !ok || run.NotMeasured != "" {
				continue
			}
			v := float64(r.Wall) / float64(time.Millisecond)
			x := gx + float64(j)*barW
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: wall %.0f ms, %.2f Neutron req/pod</title></rect>`+"\n",
				x, y(v), barW-barGap, y(0)-y(v), colors[j%len(colors)], xmlEscape(run.Name), xmlEscape(r.Name), v, float64(r.RequestCount())/float64(r.N))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", x+(barW-barGap)/2, y(v)-3, axisLabel(math.Round(v)))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n", float64(left)+group*(float64(i)+0.5), height-bottom+18, xmlEscape(br.Name))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, width-right, y(0), y(0))
	for j, run := range runs {
		x := left + 10 + (j%3)*260
		yy := height - 50 + (j/3)*18
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, yy-10, colors[j%len(colors)], x+16, yy, xmlEscape(run.Name))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">wall: first pod create → last pod's interfaces active (log scale)</text>`+"\n", left, height-6)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
