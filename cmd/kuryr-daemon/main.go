// Command kuryr-daemon runs on each node VM: it serves the kuryr-cni shim on
// a unix socket, plugs VLAN/MACVLAN interfaces into pod namespaces, binds
// DPDK devices, and reports them. It watches only its own node's pods and
// KuryrPods, and never talks to the cloud.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/daemon"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kuryr-daemon", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryr-daemon --node-name NODE [flags]\n\n"+
			"Serves the kuryr-cni shim on this node: waits for each pod's interfaces to be ACTIVE\n"+
			"in the cloud (from its KuryrPod), plugs VLAN/MACVLAN interfaces into the pod and binds\n"+
			"DPDK devices (uio_pci_generic or vfio-pci), and undoes it all on DEL.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	opts := daemon.Defaults()
	opts.AddFlags(fs)
	var kube cmdutil.KubeClient
	kube.AddFlags(fs, 20, 40)
	metricsAddr := fs.String("metrics-bind-address", ":9090", "address of /metrics (0 disables)")
	probeAddr := fs.String("health-probe-bind-address", ":9091", "address of /healthz and /readyz")
	showVersion := fs.Bool("version", false, "print the version and exit")
	cmdutil.AddKlogFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("kuryr-daemon", version.Version)
		return 0
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "kuryr-daemon: invalid options:\n%v\n", err)
		return 2
	}
	ctrl.SetLogger(klog.NewKlogr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, opts, &kube, *metricsAddr, *probeAddr); err != nil {
		klog.ErrorS(err, "kuryr-daemon stopped")
		return 1
	}
	return 0
}

func serve(ctx context.Context, opts daemon.Options, kube *cmdutil.KubeClient, metricsAddr, probeAddr string) error {
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return err
	}
	cfg, err := kube.Config()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  daemon.CacheOptions(opts.NodeName),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	d, err := daemon.New(opts, mgr.GetClient(), mgr.GetAPIReader(), crmetrics.Registry, ctrl.Log.WithName("daemon"))
	if err != nil {
		return err
	}
	if err := d.Watch(ctx, mgr.GetCache()); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", func(*http.Request) error { return d.Ready() }); err != nil {
		return err
	}
	// The start-up reconcile of checkpoints runs once the cache has
	// synced; the socket listens meanwhile, and CNI requests wait for it.
	if err := mgr.Add(runnable(func(ctx context.Context) error { return d.ReconcileAtStart(ctx, mgr.GetCache()) })); err != nil {
		return err
	}
	ln, err := cniapi.Listen(opts.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Socket, err)
	}
	srv := cniapi.NewServer(d, cniapi.WithReadiness(d.Ready), cniapi.WithLogger(ctrl.Log.WithName("cni")))
	if err := mgr.Add(runnable(func(ctx context.Context) error { return srv.Serve(ctx, ln) })); err != nil {
		return err
	}
	klog.InfoS("starting kuryr-daemon", "version", version.Version, "node", opts.NodeName, "socket", opts.Socket, "primary", opts.Primary)
	return mgr.Start(ctx)
}

// runnable adapts a function to a manager Runnable that runs on every
// replica (a daemon has no leader).
type runnable func(context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (r runnable) NeedLeaderElection() bool        { return false }
