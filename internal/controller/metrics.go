package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// metrics of the controller. Reconcile counts and durations come from
// controller-runtime itself (controller_runtime_reconcile_*).
type metrics struct {
	// waiting holds the pods whose interfaces are not all ACTIVE yet; the
	// gauge is its size.
	waitingMu    sync.Mutex
	waiting      map[types.UID]bool
	portsCreated *prometheus.CounterVec
	portsDeleted prometheus.Counter
	attaches     prometheus.Counter
	detaches     prometheus.Counter
	podsWaiting  prometheus.Gauge
	podReady     prometheus.Histogram
	gcReleased   prometheus.Counter
	poolTakes    *prometheus.CounterVec
	poolFill     prometheus.Histogram
	poolPorts    *prometheus.GaugeVec
	claimDevices *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		waiting: map[types.UID]bool{},
		portsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_controller_ports_created_total", Help: "Neutron ports created, by driver.",
		}, []string{"driver"}),
		portsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuryr_controller_ports_deleted_total", Help: "Neutron ports deleted.",
		}),
		attaches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuryr_controller_interface_attaches_total", Help: "Nova interface attachments requested.",
		}),
		detaches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuryr_controller_interface_detaches_total", Help: "Nova interface detachments requested.",
		}),
		podsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kuryr_controller_pods_waiting", Help: "Pods whose interfaces are not all ACTIVE yet.",
		}),
		podReady: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kuryr_controller_pod_interfaces_ready_seconds", Help: "From pod creation to every interface ACTIVE in the cloud.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		gcReleased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuryr_controller_gc_ports_released_total", Help: "Ports of vanished pods released by the garbage collector.",
		}),
		poolTakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_controller_pool_takes_total", Help: "Interfaces that asked a pool for a port, by driver and result (hit or miss); an interface that waited for its pool's ports (nested-dpdk) is one miss.",
		}, []string{"driver", "result"}),
		poolFill: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kuryr_controller_pool_fill_seconds", Help: "Duration of one pool refill: bulk create, wiring, listing.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		poolPorts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kuryr_controller_pool_ports", Help: "Pooled ports by driver and state (ready, warming, in_use), all nodes together.",
		}, []string{"driver", "state"}),
		claimDevices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_controller_dpdk_claim_devices_total",
			Help: "Pre-attached DPDK ports and ResourceClaims: taken by a claim, refused to one (in use, unknown), returned to the pool.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.portsCreated, m.portsDeleted, m.attaches, m.detaches, m.podsWaiting, m.podReady, m.gcReleased,
			m.poolTakes, m.poolFill, m.poolPorts, m.claimDevices)
	}
	return m
}

// setWaiting records whether pod uid waits for its interfaces.
func (m *metrics) setWaiting(uid types.UID, waiting bool) {
	m.waitingMu.Lock()
	defer m.waitingMu.Unlock()
	if waiting {
		m.waiting[uid] = true
	} else {
		delete(m.waiting, uid)
	}
	m.podsWaiting.Set(float64(len(m.waiting)))
}

// setPoolPorts sets the pool size gauges from the pools of every node.
func (m *metrics) setPoolPorts(byNode map[string][]v1alpha1.NodePool) {
	m.poolPorts.Reset()
	for _, l := range byNode {
		for _, st := range l {
			d := string(st.Driver)
			m.poolPorts.WithLabelValues(d, "ready").Add(float64(st.Ready))
			m.poolPorts.WithLabelValues(d, "warming").Add(float64(st.Warming))
			m.poolPorts.WithLabelValues(d, "in_use").Add(float64(st.InUse))
		}
	}
}

// CloudMetrics instruments the HTTP client the OpenStack layer uses: every
// request is counted and timed by service and operation (method and path
// with IDs replaced), so latency and errors per OpenStack operation, and
// calls per pod, can be read from /metrics.
type CloudMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewCloudMetrics registers the OpenStack request metrics with reg.
func NewCloudMetrics(reg prometheus.Registerer) *CloudMetrics {
	m := &CloudMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuryr_openstack_requests_total", Help: "OpenStack API requests by operation and result (HTTP code, or error).",
		}, []string{"op", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kuryr_openstack_request_duration_seconds", Help: "OpenStack API request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

// Wrap returns a RoundTripper that records every request.
func (m *CloudMetrics) Wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		op := OperationName(req.Method, req.URL.Path)
		start := time.Now()
		resp, err := next.RoundTrip(req)
		m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		m.requests.WithLabelValues(op, code).Inc()
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var idSegment = regexp.MustCompile(`^([0-9a-fA-F-]{8,}|[0-9]+)$`)

// OperationName names an OpenStack request for metrics, e.g.
// "PUT /v2.0/trunks/{id}/add_subports".
func OperationName(method, path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		switch {
		case i > 0 && segs[i-1] == "tags":
			segs[i] = "{tag}"
		case idSegment.MatchString(s):
			segs[i] = "{id}"
		}
	}
	return method + " /" + strings.Join(segs, "/")
}
