package bench

import (
	"context"
	"fmt"
	"strings"
)

// ControllerLoad is where the controller's time went over a run, from its
// /metrics read before the first pod create and after the last ADD
// returned (the difference): its pod queue (controller-runtime's workqueue
// metrics of the kuryr-pod controller) and its Kubernetes client (client-go's
// rest_client metrics, which the binaries' managers serve).
type ControllerLoad struct {
	// Reconciles of pods, with the total time they waited in the queue
	// for a worker and the total time the workers spent on them.
	Reconciles, QueueWait, Work float64
	// Requests to the Kubernetes API by method (GET, POST, PUT, PATCH,
	// DELETE), with the total time they waited for the client-side limit
	// (--kube-api-qps, --kube-api-burst) and then for the API server.
	Requests           map[string]float64
	Throttled, Latency float64
}

// controllerLoadMetrics are the sums and counts ControllerLoad is made
// of.
var controllerLoadMetrics = []string{
	"workqueue_queue_duration_seconds_sum", "workqueue_queue_duration_seconds_count",
	"workqueue_work_duration_seconds_sum",
	"rest_client_requests_total",
	"rest_client_rate_limiter_duration_seconds_sum",
	"rest_client_request_duration_seconds_sum",
}

// scrapeControllerLoad reads controllerLoadMetrics from the controller's
// /metrics at url, keyed by metric name and then label set.
func scrapeControllerLoad(ctx context.Context, url string) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	for _, name := range controllerLoadMetrics {
		v, err := ScrapeCounter(ctx, url, name)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

// controllerLoad is what happened between two scrapes of
// scrapeControllerLoad.
func controllerLoad(before, after map[string]map[string]float64) ControllerLoad {
	sum := func(name string, keep func(labels string) bool) float64 {
		t := 0.0
		for labels, v := range CounterDelta(before[name], after[name]) {
			if keep(labels) {
				t += v
			}
		}
		return t
	}
	pods := func(labels string) bool { return strings.Contains(labels, `controller="kuryr-pod"`) }
	all := func(string) bool { return true }
	l := ControllerLoad{
		Reconciles: sum("workqueue_queue_duration_seconds_count", pods),
		QueueWait:  sum("workqueue_queue_duration_seconds_sum", pods),
		Work:       sum("workqueue_work_duration_seconds_sum", pods),
		Throttled:  sum("rest_client_rate_limiter_duration_seconds_sum", all),
		Latency:    sum("rest_client_request_duration_seconds_sum", all),
		Requests:   map[string]float64{},
	}
	for labels, v := range CounterDelta(before["rest_client_requests_total"], after["rest_client_requests_total"]) {
		for _, kv := range splitLabels(labels) {
			if k, m, _ := strings.Cut(kv, "="); k == "method" {
				l.Requests[strings.Trim(m, `"`)] += v
			}
		}
	}
	return l
}

// String says it per pod reconcile and per request, for the report.
func (l ControllerLoad) String() string {
	if l.Reconciles == 0 {
		return "no pod reconciled"
	}
	n := 0.0
	var methods []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		if v := l.Requests[m]; v > 0 {
			methods = append(methods, fmt.Sprintf("%s %.0f", m, v))
			n += v
		}
	}
	s := fmt.Sprintf("%.0f pod reconciles, each waiting %s in the queue and worked %s (means); %.0f Kubernetes API requests (%s)",
		l.Reconciles, dur(seconds(l.QueueWait/l.Reconciles)), dur(seconds(l.Work/l.Reconciles)), n, strings.Join(methods, ", "))
	if n > 0 {
		s += fmt.Sprintf(", each waiting %s for the client-side limit and %s for the API server (means)", dur(seconds(l.Throttled/n)), dur(seconds(l.Latency/n)))
	}
	return s
}
