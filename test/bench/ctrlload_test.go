package bench

import (
	"strings"
	"testing"
)

// TestControllerLoad: the difference of two scrapes, the pod controller's
// queue alone (not the claim controller's), requests summed by method over
// codes, and the means of the summary line.
func TestControllerLoad(t *testing.T) {
	page := func(text string) map[string]map[string]float64 {
		out := map[string]map[string]float64{}
		for _, name := range controllerLoadMetrics {
			v, err := parseCounter(strings.NewReader(text), name)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = v
		}
		return out
	}
	before := page(`workqueue_queue_duration_seconds_sum{controller="kuryr-pod",name="kuryr-pod"} 1
workqueue_queue_duration_seconds_count{controller="kuryr-pod",name="kuryr-pod"} 10
workqueue_queue_duration_seconds_count{controller="kuryr-dpdk-claim",name="kuryr-dpdk-claim"} 0
workqueue_work_duration_seconds_sum{controller="kuryr-pod",name="kuryr-pod"} 2
rest_client_requests_total{code="200",host="h",method="PUT"} 5
rest_client_rate_limiter_duration_seconds_sum{host="h",verb="PUT"} 0
rest_client_request_duration_seconds_sum{host="h",verb="PUT"} 0.5
`)
	after := page(`workqueue_queue_duration_seconds_sum{controller="kuryr-pod",name="kuryr-pod"} 11
workqueue_queue_duration_seconds_count{controller="kuryr-pod",name="kuryr-pod"} 30
workqueue_queue_duration_seconds_count{controller="kuryr-dpdk-claim",name="kuryr-dpdk-claim"} 7
workqueue_work_duration_seconds_sum{controller="kuryr-pod",name="kuryr-pod"} 6
rest_client_requests_total{code="200",host="h",method="PUT"} 45
rest_client_requests_total{code="409",host="h",method="PUT"} 10
rest_client_requests_total{code="201",host="h",method="POST"} 50
rest_client_rate_limiter_duration_seconds_sum{host="h",verb="PUT"} 6
rest_client_rate_limiter_duration_seconds_sum{host="h",verb="POST"} 4
rest_client_request_duration_seconds_sum{host="h",verb="PUT"} 10.5
`)
	l := controllerLoad(before, after)
	if l.Reconciles != 20 || l.QueueWait != 10 || l.Work != 4 || l.Throttled != 10 || l.Latency != 10 ||
		l.Requests["PUT"] != 50 || l.Requests["POST"] != 50 || len(l.Requests) != 2 {
		t.Fatalf("controllerLoad = %+v", l)
	}
	want := "20 pod reconciles, each waiting 500 ms in the queue and worked 200 ms (means); 100 Kubernetes API requests (POST 50, PUT 50), " +
		"each waiting 100 ms for the client-side limit and 100 ms for the API server (means)"
	if got := l.String(); got != want {
		t.Errorf("String:\n got %s\nwant %s", got, want)
	}
}
