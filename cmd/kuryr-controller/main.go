// Command kuryr-controller watches Pods and NetworkAttachmentDefinitions and
// creates their interfaces in OpenStack (Neutron ports, trunk subports,
// allowed address pairs, Nova interface attachments), recording them in a
// KuryrPod per pod. Many replicas may run; one leads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil/manager"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

// flags are the process's own settings; controller.Options are the
// controller's behaviour (also settable from --config).
type flags struct {
	manager        manager.Flags
	configFile     string
	leaderElect    bool
	leaderElectNS  string
	cloud          openstack.Config
	requestTimeout time.Duration
}

func run(args []string) int {
	fs := flag.NewFlagSet("kuryr-controller", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryr-controller [flags]\n\n"+
			"Gives pods on nested (OpenStack VM) nodes their interfaces: VLAN trunk subports,\n"+
			"MACVLAN allowed-address-pairs and DPDK ports attached by Nova, recorded in KuryrPods.\n"+
			"OpenStack credentials: --os-cloud (clouds.yaml), or the OS_* environment variables,\n"+
			"or --neutron-url/--nova-url/--project-id for a cloud without Keystone (noauth).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var f flags
	// The config file sets the options' defaults, so that flags given on
	// the command line win over it.
	opts := controller.Defaults()
	if path := configArg(args); path != "" {
		if err := opts.LoadFile(path); err != nil {
			fmt.Fprintln(os.Stderr, "kuryr-controller:", err)
			return 2
		}
	}
	// In make bench a pod costs this client about five requests (finalizer
	// patch, KuryrPod create, its status, KuryrNode status writes; Events
	// go through a client of their own): at 50 requests/s and a burst of
	// 100, 100 pods created together took at least 8 s whatever else was
	// fast (docs/benchmarks.md). The API server's own priority and
	// fairness still bounds what it serves.
	f.manager.AddFlags(fs, manager.Defaults{QPS: 200, Burst: 400, MetricsAddr: ":8080", ProbeAddr: ":8081"})
	fs.StringVar(&f.configFile, "config", "", "YAML file with controller options (flags given on the command line win)")
	fs.BoolVar(&f.leaderElect, "leader-elect", true, "elect a leader so that only one replica acts")
	fs.StringVar(&f.leaderElectNS, "leader-election-namespace", "", "namespace of the leader election Lease (the pod's own when empty)")
	fs.StringVar(&f.cloud.Cloud, "os-cloud", "", "clouds.yaml entry (else OS_CLOUD, else OS_* variables)")
	fs.StringVar(&f.cloud.CloudsFile, "os-clouds-file", "", "clouds.yaml path (else the usual locations)")
	fs.StringVar(&f.cloud.NeutronURL, "neutron-url", "", "Neutron endpoint without Keystone (noauth), e.g. http://127.0.0.1:9696")
	fs.StringVar(&f.cloud.NovaURL, "nova-url", "", "Nova endpoint without Keystone (noauth), e.g. http://127.0.0.1:8774/v2.1")
	fs.StringVar(&f.cloud.ProjectID, "project-id", "", "project ID for noauth mode")
	fs.DurationVar(&f.requestTimeout, "os-request-timeout", openstack.DefaultRequestTimeout, "bound on every OpenStack request")
	opts.AddFlags(fs)
	return cmdutil.Command{Name: "kuryr-controller", Flags: fs, Validate: func() error { return errors.Join(opts.Validate(), f.manager.Validate()) },
		Serve: func(ctx context.Context) error { return serve(ctx, f, opts) }}.Run(args)
}

// configArg finds --config in args before they are parsed.
func configArg(args []string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func serve(ctx context.Context, f flags, opts controller.Options) error {
	if setDefaultGCPercent(os.Getenv) {
		klog.InfoS("garbage collector target", "GOGC", defaultGCPercent)
	}
	switch limit, ok, err := defaultMemoryLimit(os.Getenv, "/"); {
	case err != nil:
		klog.InfoS("no default memory limit", "reason", err.Error())
	case ok:
		debug.SetMemoryLimit(limit)
		klog.InfoS("soft memory limit from the container's", "bytes", limit)
	}
	mgr, err := f.manager.New(ctrl.Options{
		Cache:                   controller.CacheOptions(),
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "kuryr-controller.kuryr-dpdk.io",
		LeaderElectionNamespace: f.leaderElectNS,
		// The successor takes over at once when the leader stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}
	cloudMetrics := controller.NewCloudMetrics(crmetrics.Registry)
	f.cloud.RequestTimeout = f.requestTimeout
	f.cloud.HTTPClient = &http.Client{Transport: cloudMetrics.Wrap(http.DefaultTransport)}
	cloud, err := connectCloud(ctx, f.cloud, connectBackoff)
	if err != nil {
		return fmt.Errorf("connect to OpenStack: %w", err)
	}
	r := controller.NewPodReconciler(mgr.GetClient(), cloud, mgr.GetEventRecorder("kuryr-controller"), opts, crmetrics.Registry)
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the pod controller: %w", err)
	}
	if err := mgr.Add(controller.NewGarbageCollector(r)); err != nil {
		return fmt.Errorf("set up the garbage collector: %w", err)
	}
	if err := manager.AddProbes(mgr, func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	klog.InfoS("starting kuryr-controller", "version", version.Version, "clusterID", opts.ClusterID, "primary", opts.Primary)
	return manager.Start(ctx, mgr)
}

// connectBackoff is how long kuryr-controller waits at start for a cloud
// that fails (an outage, a 5xx, a 409, a lost answer): about five minutes
// of attempts, so that a flaky cloud does not send it into the kubelet's
// crash-loop backoff (the fault soak found it exiting on one 409 from
// Neutron's version document).
var connectBackoff = openstack.Backoff{Initial: time.Second, Max: 30 * time.Second, Factor: 2, Jitter: 0.2, Attempts: 15}

// connectCloud is openstack.New retried with b on transient errors and
// conflicts; a terminal error (bad credentials, no such endpoint) ends it
// at once.
func connectCloud(ctx context.Context, cfg openstack.Config, b openstack.Backoff) (*openstack.Client, error) {
	var c *openstack.Client
	err := openstack.Retry(ctx, b, func(ctx context.Context) error {
		var err error
		c, err = openstack.New(ctx, cfg)
		return err
	}, openstack.RetryOnConflict(), openstack.OnRetry(func(attempt int, err error) {
		klog.InfoS("OpenStack not answering yet, retrying", "attempt", attempt, "reason", err.Error())
	}))
	return c, err
}
