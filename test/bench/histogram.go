package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Histogram is a Prometheus histogram: cumulative counts by upper bound.
type Histogram struct {
	// Bounds are the buckets' upper bounds in seconds, ascending,
	// math.MaxFloat64 standing for the last one, +Inf;
	// Cumulative[i] counts the observations <= Bounds[i].
	Bounds     []float64
	Cumulative []float64
	Count, Sum float64
}

// Add returns the sum of h and o (the same buckets, or h empty).
func (h Histogram) Add(o Histogram) Histogram {
	if len(h.Bounds) == 0 {
		return Histogram{Bounds: slices.Clone(o.Bounds), Cumulative: slices.Clone(o.Cumulative), Count: o.Count, Sum: o.Sum}
	}
	out := Histogram{Bounds: slices.Clone(h.Bounds), Cumulative: slices.Clone(h.Cumulative), Count: h.Count + o.Count, Sum: h.Sum + o.Sum}
	for i := range out.Cumulative {
		if i < len(o.Cumulative) {
			out.Cumulative[i] += o.Cumulative[i]
		}
	}
	return out
}

// Mean is Sum/Count; 0 for no observations.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return seconds(h.Sum / h.Count)
}

// Quantile returns the upper bound of the bucket holding the p-th
// percentile (0 < p <= 100): the true value is at most this, and (with
// the daemon's doubling buckets) more than half of it. It returns 0 for no
// observations and +Inf past the last finite bound.
func (h Histogram) Quantile(p float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := math.Ceil(p / 100 * h.Count)
	for i, c := range h.Cumulative {
		if c >= rank {
			if h.Bounds[i] == math.MaxFloat64 {
				return math.Inf(1)
			}
			return h.Bounds[i]
		}
	}
	return math.Inf(1)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// ScrapeHistograms reads histogram name from a Prometheus text endpoint,
// one per value of label.
func ScrapeHistograms(ctx context.Context, url, name, label string) (map[string]Histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return parseHistograms(resp.Body, name, label)
}

func parseHistograms(r io.Reader, name, label string) (map[string]Histogram, error) {
	out := map[string]Histogram{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+"_")
		if !ok {
			continue
		}
		kind, rest, ok := strings.Cut(rest, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %q: %w", name, value, err)
		}
		lv := labelValues(labels)
		key := lv[label]
		h := out[key]
		switch kind {
		case "bucket":
			le, err := strconv.ParseFloat(lv["le"], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: le %q: %w", name, lv["le"], err)
			}
			if math.IsInf(le, 1) {
				le = math.MaxFloat64 // JSON has no +Inf
			}
			h.Bounds = append(h.Bounds, le)
			h.Cumulative = append(h.Cumulative, v)
		case "sum":
			h.Sum = v
		case "count":
			h.Count = v
		}
		out[key] = h
	}
	return out, sc.Err()
}

// labelValues parses `a="x",b="y"` (values hold no quotes or commas here).
func labelValues(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}
