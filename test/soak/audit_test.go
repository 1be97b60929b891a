package soak

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// report is the audit: per layer the most it held during the run and what
// it holds now (aio.Env.Traces), and the counts that failed.
type report struct {
	settled time.Duration
	rows    []row
	traces  []aio.Trace
	errs    []error
}

type row struct {
	layer          string
	peak, leftover int
	// mustSee: a pod of the soak uses this layer, so a run in which it
	// never held anything did not exercise it.
	mustSee bool
}

// audit counts the leftovers in every layer now.
func (s *soak) audit(settled time.Duration) report {
	traces, errs := s.env.Traces()
	left := map[string]int{}
	for _, t := range traces {
		left[t.Layer]++
	}
	mgmt := aio.LayerAddressPairs
	if s.env.MgmtDriver == v1alpha1.DriverNestedVLAN {
		mgmt = aio.LayerSubports
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := report{settled: settled, traces: traces, errs: errs}
	for _, l := range aio.Layers {
		must := l == mgmt
		switch l {
		case aio.LayerPorts, aio.LayerAttachments, aio.LayerDevices, aio.LayerBound, aio.LayerCheckpoints,
			aio.LayerDevinfo, aio.LayerCNIResults, aio.LayerNetNS:
			must = true
		}
		r.rows = append(r.rows, row{layer: l, peak: s.peak[l], leftover: left[l], mustSee: must})
	}
	return r
}

func (r report) clean() bool { return len(r.traces) == 0 && len(r.errs) == 0 }

// details names every leftover and failed count.
func (r report) details() []string {
	var out []string
	for _, t := range r.traces {
		out = append(out, "  "+t.Layer+": "+t.What)
	}
	for _, err := range r.errs {
		out = append(out, "  count failed: "+err.Error())
	}
	return out
}

// String is the table: one row per layer, "leftover" the count that must
// be zero.
func (r report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak audit (faults off, pods deleted, settle %.1f s):\n", r.settled.Seconds())
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "layer\tpeak during run\tleftover\t")
	for _, row := range r.rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t\n", row.layer, row.peak, row.leftover)
	}
	fmt.Fprintf(w, "%s\t%s\t%d\t\n", "failed counts", "-", len(r.errs))
	_ = w.Flush()
	return b.String()
}
