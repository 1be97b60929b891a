package bench

import (
	"fmt"
	"io"
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
// so far, and each run's p50, p90 and wall divided by runs[0]'s.
func WritePeerTable(w io.Writer, runs []Run) error {
	if len(runs) == 0 {
		return nil
	}
	base := runs[0]
	var b strings.Builder
	fmt.Fprintf(&b, "| round | controller | p50 | p90 | wall | Neutron req/pod | peak RSS | p50 ÷ %[1]s | p90 ÷ %[1]s | wall ÷ %[1]s |\n", base.Name)
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	ratio := func(a, b time.Duration) string {
		if b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f×", float64(a)/float64(b))
	}
	for _, br := range base.Results {
		for _, run := range runs {
			if run.NotMeasured != "" {
				fmt.Fprintf(&b, "| %s | %s | not measured: %s | | | | | | | |\n", br.Name, run.Name, run.NotMeasured)
				continue
			}
			r, ok := run.round(br.Name)
			if !ok {
				why := "no such round"
				if run.Error != "" {
					why = "failed: " + strings.ReplaceAll(run.Error, "|", "\\|")
				}
				fmt.Fprintf(&b, "| %s | %s | %s | | | | | | | |\n", br.Name, run.Name, why)
				continue
			}
			p50, p90 := Percentile(r.Latency, 50), Percentile(r.Latency, 90)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f | %.1f MiB | %s | %s | %s |\n", r.Name, run.Name,
				ms(p50), ms(p90), ms(r.Wall), float64(r.RequestCount())/float64(r.N), mib(r.Memory.Peak),
				ratio(p50, Percentile(br.Latency, 50)), ratio(p90, Percentile(br.Latency, 90)), ratio(r.Wall, br.Wall))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
