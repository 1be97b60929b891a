package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Phases of an ADD, as measured in kuryr_daemon_cni_phase_seconds.
const (
	phaseWaitInterfaces = "wait_interfaces"
	phaseWaitDevice     = "wait_device"
	phaseBind           = "bind"
	phaseNetlink        = "netlink"
	phaseReport         = "report"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	phases   *prometheus.HistogramVec
	// reconciled counts the checkpoints the start-up reconcile looked at,
	// by outcome.
	reconciled *prometheus.CounterVec
	// setAside counts checkpoints set aside, by reason.
	setAside *prometheus.CounterVec
	// ownerReads counts the ADDs' reads of the KuryrNode from the API
	// server, by what they found.
	ownerReads *prometheus.CounterVec
}

// Results of an ADD's read of the KuryrNode from the API server, as counted
// in kuryr_daemon_owner_reads_total.
const (
	ownerReadListed  = "listed"
	ownerReadRefused = "refused"
	ownerReadFailed  = "failed"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_daemon_cni_requests_total", Help: "CNI requests by verb, driver and result (ok or the CNI error code).",
		}, []string{"verb", "driver", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kuryr_daemon_cni_request_duration_seconds", Help: "CNI request latency by verb.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}, []string{"verb"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kuryr_daemon_cni_phase_seconds", Help: "Time spent in each phase of an ADD: wait_interfaces (cloud), wait_device (hot-plug), bind (DPDK driver), netlink (kernel interfaces), report.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 20),
		}, []string{"phase"}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_daemon_startup_reconcile_total",
			Help: "Checkpointed attachments seen by the start-up reconcile, by outcome: kept, undone_pod_gone, undone_netns_gone, failed.",
		}, []string{"outcome"}),
		setAside: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_daemon_checkpoints_set_aside_total",
			Help: "Checkpoints set aside, by reason: corrupt (moved to the quarantine directory), newer_schema (left in place), device_mismatch (the device is not as recorded; moved to the quarantine directory, the device left alone).",
		}, []string{"reason"}),
		ownerReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_daemon_owner_reads_total",
			Help: "Reads of the node's KuryrNode from the API server by ADDs whose DPDK device the watched KuryrNode did not show as the pod's, by result: listed (the API server lists it: the watch was behind; bound), refused (not listed there either; CNI error 999), failed (the read failed; the ADD waits on the watch).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.phases, m.reconciled, m.setAside, m.ownerReads)
	}
	return m
}
