// Package manager holds what the binaries built on a controller-runtime
// manager (kuryr-controller, kuryr-daemon) share: the client, metrics and
// probe flags, building the manager from them, and the health probes. It
// is apart from cmdutil so that kuryrctl does not link the manager.
package manager

import (
	"flag"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
)

// Flags holds the flags of a binary built on a controller-runtime
// manager: its Kubernetes client and where it serves /metrics, /healthz and
// /readyz.
type Flags struct {
	Kube        cmdutil.KubeClient
	MetricsAddr string
	// MetricsSecure serves /metrics over HTTPS, only to clients whose bearer
	// token the API server authenticates (TokenReview) and authorizes for
	// "get" on the non-resource URL /metrics (SubjectAccessReview).
	MetricsSecure bool
	ProbeAddr     string
	// PprofAddr serves Go's /debug/pprof (CPU and heap profiles) on a
	// loopback address; empty (the default) serves none. Profiles show
	// what the process holds, so they are never served beyond the host.
	PprofAddr string
}

// Defaults are a binary's defaults for its Flags.
type Defaults struct {
	QPS         float64
	Burst       int
	MetricsAddr string
	ProbeAddr   string
}

// AddFlags registers the client flags (KubeClient.AddFlags),
// --metrics-bind-address, --metrics-secure, --health-probe-bind-address
// and --pprof-bind-address on fs.
func (f *Flags) AddFlags(fs *flag.FlagSet, d Defaults) {
	f.Kube.AddFlags(fs, d.QPS, d.Burst)
	fs.StringVar(&f.MetricsAddr, "metrics-bind-address", d.MetricsAddr, "address of /metrics (0 disables)")
	fs.BoolVar(&f.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS (a self-signed certificate) to clients the API server authenticates and allows to get /metrics; false serves plain HTTP to anyone")
	fs.StringVar(&f.ProbeAddr, "health-probe-bind-address", d.ProbeAddr, "address of /healthz and /readyz")
	fs.StringVar(&f.PprofAddr, "pprof-bind-address", "", "loopback address (127.0.0.1:PORT) of Go's /debug/pprof; empty: off")
}

// Validate checks the flags that New does not: --pprof-bind-address is
// empty or a loopback IP address with a port.
func (f *Flags) Validate() error {
	if f.PprofAddr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(f.PprofAddr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil || !ip.IsLoopback() || port == "" {
		return fmt.Errorf("--pprof-bind-address: %q must be a loopback address with a port, such as 127.0.0.1:6060 (profiles are not served beyond the host)", f.PprofAddr)
	}
	return nil
}

// New builds the manager: cmdutil.Scheme's types, the client of the flags, the
// metrics, probe and pprof addresses of the flags, RESTMapper unless opts
// names another, and the rest from opts (cache, leader election).
//
// Its /metrics also serve the Kubernetes client's
// rest_client_request_duration_seconds and
// rest_client_rate_limiter_duration_seconds (by verb), which
// controller-runtime leaves off: the time each API request waited for the
// client-side limit (--kube-api-qps, --kube-api-burst) and then for the
// API server.
func (f *Flags) New(opts ctrl.Options) (ctrl.Manager, error) {
	ctrlmetrics.RegisterRESTClientMetrics(ctrlmetrics.MetricRequestLatency, ctrlmetrics.MetricRateLimiterLatency)
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return nil, err
	}
	cfg, err := f.Kube.Config()
	if err != nil {
		return nil, err
	}
	opts.Scheme = scheme
	opts.Metrics = metricsserver.Options{BindAddress: f.MetricsAddr, SecureServing: f.MetricsSecure,
		HandlerOpts: []func(*promhttp.HandlerOpts){uncompressedMetrics}}
	if f.MetricsSecure {
		opts.Metrics.FilterProvider = MetricsAuth
	}
	opts.HealthProbeBindAddress = f.ProbeAddr
	opts.PprofBindAddress = f.PprofAddr
	if opts.MapperProvider == nil {
		opts.MapperProvider = RESTMapper
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	return mgr, nil
}

// uncompressedMetrics serves /metrics without gzip, whatever the scraper
// accepts: the page is a few tens of KiB, and each gzip writer the
// handler keeps for the next scrape holds about 0.8 MiB of heap (a
// fifth of the controller's heap after its first pod; docs/benchmarks.md).
func uncompressedMetrics(o *promhttp.HandlerOpts) { o.DisableCompression = true }

// RESTMapper is the managers' RESTMapper: kuryr-dpdk's own kinds
// (v1alpha1.AddToRESTMapper) and the built-in ones the binaries use
// (BuiltinKinds) without asking the API server, every other kind
// discovered from it when first needed (controller-runtime's dynamic
// mapper). Setting the binaries up makes informers of the own kinds (an
// index of KuryrPods, the daemon's KuryrPod and KuryrNode handlers), which
// needs their mappings: with the dynamic mapper alone a kuryr-controller or
// kuryr-daemon started while the API server is unreachable (restarted by its
// kubelet during an outage) failed there and exited, again and again, into
// the kubelet's crash-loop backoff. Now it starts and waits for the API
// server.
func RESTMapper(cfg *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
	dynamic, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	own := meta.NewDefaultRESTMapper([]schema.GroupVersion{v1alpha1.GroupVersion})
	v1alpha1.AddToRESTMapper(own)
	for gvk, scope := range BuiltinKinds {
		plural, singular := meta.UnsafeGuessKindToResource(gvk)
		if r, ok := irregularPlurals[gvk]; ok {
			plural = gvk.GroupVersion().WithResource(r)
		}
		own.AddSpecific(gvk, plural, singular, scope)
	}
	return meta.FirstHitRESTMapper{MultiRESTMapper: meta.MultiRESTMapper{own, dynamic}}, nil
}

// BuiltinKinds are the built-in kinds kuryr-controller and kuryr-daemon
// watch, read or write through their managers, with their scopes: mapped
// without discovery as the own kinds are (a daemon's informer of its
// node's pods needs the Pod's mapping while it sets itself up). The
// test checks each against a real API server's discovery.
var BuiltinKinds = map[schema.GroupVersionKind]meta.RESTScope{
	{Version: "v1", Kind: "Pod"}:                                                   meta.RESTScopeNamespace,
	{Version: "v1", Kind: "Node"}:                                                  meta.RESTScopeRoot,
	{Version: "v1", Kind: "Namespace"}:                                             meta.RESTScopeRoot,
	{Version: "v1", Kind: "Event"}:                                                 meta.RESTScopeNamespace,
	{Group: "events.k8s.io", Version: "v1", Kind: "Event"}:                         meta.RESTScopeNamespace,
	{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"}:                   meta.RESTScopeNamespace,
	{Group: "resource.k8s.io", Version: "v1", Kind: "ResourceClaim"}:               meta.RESTScopeNamespace,
	{Group: "resource.k8s.io", Version: "v1", Kind: "ResourceSlice"}:               meta.RESTScopeRoot,
	{Group: "resource.k8s.io", Version: "v1", Kind: "DeviceClass"}:                 meta.RESTScopeRoot,
	{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"}: meta.RESTScopeNamespace,
}

// irregularPlurals are the resources of BuiltinKinds that are not the kind
// lower-cased with an s.
var irregularPlurals = map[schema.GroupVersionKind]string{
	{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"}: "network-attachment-definitions",
}

// AddProbes serves /healthz (the check "ping": the process answers) and
// /readyz (the check "informers": ready).
func AddProbes(mgr ctrl.Manager, ready healthz.Checker) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("informers", ready)
}
