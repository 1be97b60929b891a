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
}

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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.phases, m.reconciled, m.setAside)
	}
	return m
}
