package soak

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// report is the audit: per layer the most it held during the run and what
// it holds now (aio.Env.Traces), and the counts that failed.
type report struct {
	// title heads the table, up to the settle time; the soak's when empty.
	title   string
	settled time.Duration
	rows    []row
	traces  []aio.Trace
	errs    []error
	// gcReleased is how many pods' ports kuryr-controller's garbage
	// collector released (-1: unknown): what the pods' own release paths
	// left and the collector caught, before the audit.
	gcReleased int
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
	r := report{settled: settled, traces: traces, errs: errs, gcReleased: -1}
	if s.env.Controller != nil {
		if n, err := gcReleases(s.env.Controller.Log); err != nil {
			r.errs = append(r.errs, err)
		} else {
			r.gcReleased = n
		}
	}
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

// unexercised names the layers a pod of the run uses that never held
// anything during it: the run did not exercise them.
func (r report) unexercised() []error {
	var errs []error
	for _, row := range r.rows {
		if row.mustSee && row.peak == 0 {
			errs = append(errs, fmt.Errorf("layer %q never held anything during the run: the run did not exercise it", row.layer))
		}
	}
	return errs
}

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
	title := r.title
	if title == "" {
		title = "soak audit (faults off, pods deleted"
	}
	fmt.Fprintf(&b, "%s, settle %.1f s):\n", title, r.settled.Seconds())
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "layer\tpeak during run\tleftover\t")
	for _, row := range r.rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t\n", row.layer, row.peak, row.leftover)
	}
	fmt.Fprintf(w, "%s\t%s\t%d\t\n", "failed counts", "-", len(r.errs))
	_ = w.Flush()
	if r.gcReleased >= 0 {
		fmt.Fprintf(&b, "kuryr-controller's garbage collector released the ports of %d pods during the run and the settle "+
			"(orphans the pods' own releases left)\n", r.gcReleased)
	}
	return b.String()
}

// gcLine is the garbage collector's log line for a round that released
// something (internal/controller/gc.go).
var gcLine = regexp.MustCompile(`"released ports of vanished pods".*? released=(\d+)`)

// gcReleases sums what the garbage collector released, from
// kuryr-controller's log.
func gcReleases(logPath string) (int, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, fmt.Errorf("read kuryr-controller's log for its garbage collector's releases: %w", err)
	}
	n := 0
	for _, m := range gcLine.FindAllSubmatch(b, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		n += v
	}
	return n, nil
}
