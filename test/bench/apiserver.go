package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// APIRequests is one kind of request kube-apiserver served over a window
// ("PUT kuryrnodes/status"), from every client: how many, and the
// seconds it spent on them in all (apiserver_request_total and
// apiserver_request_duration_seconds_sum of its own /metrics).
type APIRequests struct {
	Kind           string
	Count, Seconds float64
}

// apiServerCounts is kube-apiserver's request counters and duration sums
// so far, by kind of request.
type apiServerCounts struct{ count, seconds map[string]float64 }

// scrapeAPIServer reads kube-apiserver's /metrics as cs (the admin).
func scrapeAPIServer(ctx context.Context, cs kubernetes.Interface) (apiServerCounts, error) {
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiServerCounts{}, fmt.Errorf("kube-apiserver's /metrics: %w", err)
	}
	return parseAPIServerCounts(b)
}

func parseAPIServerCounts(b []byte) (apiServerCounts, error) {
	out := apiServerCounts{count: map[string]float64{}, seconds: map[string]float64{}}
	for name, dst := range map[string]map[string]float64{
		"apiserver_request_total": out.count, "apiserver_request_duration_seconds_sum": out.seconds,
	} {
		m, err := parseCounter(bytes.NewReader(b), name)
		if err != nil {
			return out, fmt.Errorf("kube-apiserver's %s: %w", name, err)
		}
		for labels, v := range m {
			dst[requestKind(labels)] += v
		}
	}
	return out, nil
}

// requestKind names a request by the verb, resource and subresource of
// its label set.
func requestKind(labels string) string {
	l := labelValues(labels)
	kind := l["verb"] + " " + l["resource"]
	if l["subresource"] != "" {
		kind += "/" + l["subresource"]
	}
	return kind
}

// apiRequests is what was served between a and b, most requests first.
func apiRequests(a, b apiServerCounts) []APIRequests {
	var out []APIRequests
	for kind, n := range b.count {
		if d := n - a.count[kind]; d > 0 {
			out = append(out, APIRequests{Kind: kind, Count: d, Seconds: b.seconds[kind] - a.seconds[kind]})
		}
	}
	slices.SortFunc(out, func(x, y APIRequests) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), strings.Compare(x.Kind, y.Kind))
	})
	return out
}

// apiRequestsString says reqs in one line: the total, then each kind with
// its count and the server's seconds on it (WATCH's seconds are how long
// the watches were open, not work).
func apiRequestsString(reqs []APIRequests) string {
	total := 0.0
	var parts []string
	for _, r := range reqs {
		total += r.Count
		parts = append(parts, fmt.Sprintf("%s %.0f (%.1f s)", r.Kind, r.Count, r.Seconds))
	}
	return fmt.Sprintf("%.0f requests: %s", total, strings.Join(parts, ", "))
}
