package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPodsWaitingGaugeCountsPodsNotReconciles(t *testing.T) {
	t.Parallel()
	m := newMetrics(prometheus.NewRegistry())
	m.setWaiting("a", true)
	m.setWaiting("a", true) // requeued while still pending
	m.setWaiting("b", true)
	if got := testutil.ToFloat64(m.podsWaiting); got != 2 {
		t.Fatalf("pods waiting = %v, want 2", got)
	}
	m.setWaiting("a", false)
	m.setWaiting("c", false) // never waited
	if got := testutil.ToFloat64(m.podsWaiting); got != 1 {
		t.Fatalf("pods waiting = %v, want 1", got)
	}
}

func TestOperationName(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/v2.0/ports/6a2d7ffc-1c87-4d4b-9d2f-4b0f4a39d2e1":                       "GET /v2.0/ports/{id}",
		"/network/v2.0/trunks/6a2d7ffc-1c87-4d4b-9d2f-4b0f4a39d2e1/add_subports": "GET /network/v2.0/trunks/{id}/add_subports",
		"/v2.0/ports/6a2d7ffc-1c87-4d4b-9d2f-4b0f4a39d2e1/tags/kuryr-pod=abc":    "GET /v2.0/ports/{id}/tags/{tag}",
		"/compute/v2.1/servers/srv-1234567/os-interface/6a2d7ffc-1c87-4d4b-9d2f": "GET /compute/v2.1/servers/srv-1234567/os-interface/{id}",
	} {
		if got := OperationName("GET", path); got != want {
			t.Errorf("OperationName(%s) = %q, want %q", path, got, want)
		}
	}
}
