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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

// flags are the process's own settings; controller.Options are the
// controller's behaviour (also settable from --config).
type flags struct {
	kube           cmdutil.KubeClient
	configFile     string
	metricsAddr    string
	probeAddr      string
	pprofAddr      string
	leaderElect    bool
	leaderElectNS  string
	showVersion    bool
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
	f.kube.AddFlags(fs, 50, 100)
	fs.StringVar(&f.configFile, "config", "", "YAML file with controller options (flags given on the command line win)")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0 disables)")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof (empty: off)")
	fs.BoolVar(&f.leaderElect, "leader-elect", true, "elect a leader so that only one replica acts")
	fs.StringVar(&f.leaderElectNS, "leader-election-namespace", "", "namespace of the leader election Lease (the pod's own when empty)")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&f.cloud.Cloud, "os-cloud", "", "clouds.yaml entry (else OS_CLOUD, else OS_* variables)")
	fs.StringVar(&f.cloud.CloudsFile, "os-clouds-file", "", "clouds.yaml path (else the usual locations)")
	fs.StringVar(&f.cloud.NeutronURL, "neutron-url", "", "Neutron endpoint without Keystone (noauth), e.g. http://127.0.0.1:9696")
	fs.StringVar(&f.cloud.NovaURL, "nova-url", "", "Nova endpoint without Keystone (noauth), e.g. http://127.0.0.1:8774/v2.1")
	fs.StringVar(&f.cloud.ProjectID, "project-id", "", "project ID for noauth mode")
	fs.DurationVar(&f.requestTimeout, "os-request-timeout", openstack.DefaultRequestTimeout, "bound on every OpenStack request")
	opts.AddFlags(fs)
	cmdutil.AddKlogFlags(fs)

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.showVersion {
		fmt.Println("kuryr-controller", version.Version)
		return 0
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "kuryr-controller: invalid options:\n%v\n", err)
		return 2
	}
	ctrl.SetLogger(klog.NewKlogr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, opts); err != nil {
		klog.ErrorS(err, "kuryr-controller stopped")
		return 1
	}
	return 0
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
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return err
	}
	restCfg, err := f.kube.Config()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.probeAddr,
		PprofBindAddress:        f.pprofAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "kuryr-controller.kuryr-dpdk.io",
		LeaderElectionNamespace: f.leaderElectNS,
		// The successor takes over at once when the leader stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	cloudMetrics := controller.NewCloudMetrics(crmetrics.Registry)
	f.cloud.RequestTimeout = f.requestTimeout
	f.cloud.HTTPClient = &http.Client{Transport: cloudMetrics.Wrap(http.DefaultTransport)}
	cloud, err := openstack.New(ctx, f.cloud)
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
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	klog.InfoS("starting kuryr-controller", "version", version.Version, "clusterID", opts.ClusterID, "primary", opts.Primary)
	return mgr.Start(ctx)
}
