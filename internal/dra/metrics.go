package dra

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a claim's Prepare or Unprepare, as counted in
// kuryr_dra_claims_total.
const (
	claimOK     = "ok"
	claimFailed = "failed"
)

// Results of a Prepare's read of the KuryrNode from the API server, as
// counted in kuryr_dra_owner_reads_total (the CNI ADD's
// kuryr_daemon_owner_reads_total has the first three).
const (
	ownerReadListed  = "listed"
	ownerReadRefused = "refused"
	ownerReadFailed  = "failed"
	ownerReadPending = "pending"
)

// metrics are the driver's Prometheus metrics.
type metrics struct {
	claims     *prometheus.CounterVec
	prepare    prometheus.Histogram
	ownerReads *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_dra_claims_total",
			Help: "Claims the kubelet asked the DRA driver to prepare or unprepare, by operation (prepare, unprepare) and result (ok, failed: the kubelet retries).",
		}, []string{"operation", "result"}),
		prepare: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kuryr_dra_prepare_duration_seconds",
			Help:    "Time to prepare one claim, its wait for the controller to give it the devices included, whatever the result.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60},
		}),
		ownerReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_dra_owner_reads_total",
			Help: "Reads of the node's KuryrNode from the API server by Prepares whose devices the watched KuryrNode showed missing or another's, by result: listed (the API server shows them the claim's: the watch was behind; prepared), refused (it shows one missing or another's too: the Prepare fails at once), pending (it shows one not given to anyone yet: the Prepare waits on the watch), failed (the read failed; the Prepare waits on the watch).",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.claims, m.prepare, m.ownerReads} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register the DRA driver's metrics: %w", err)
		}
	}
	return m, nil
}

// result is err's claimOK or claimFailed.
func result(err error) string {
	if err != nil {
		return claimFailed
	}
	return claimOK
}
