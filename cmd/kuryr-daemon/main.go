// Command kuryr-daemon runs on each node VM: it serves the kuryr-cni shim on
// a unix socket, plugs VLAN/MACVLAN interfaces into pod namespaces, binds
// DPDK devices, and reports them. It watches only its own node's pods,
// KuryrPods and KuryrNode, keeps the node's pre-attached DPDK devices down
// and unconfigured, labels its Node with what it offers DPDK, and never
// talks to the cloud. With --dra (by default where the kubelet's plugin
// registry exists) it also runs the DRA kubelet plugin for the node's
// pre-attached DPDK ports (internal/dra).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil/manager"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/daemon"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/dra"
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
	draOpts := dra.Defaults()
	draOpts.AddFlags(fs)
	var m manager.Flags
	m.AddFlags(fs, manager.Defaults{QPS: 20, Burst: 40, MetricsAddr: ":9090", ProbeAddr: ":9091"})
	return cmdutil.Command{Name: "kuryr-daemon", Flags: fs,
		Validate: func() error { return errors.Join(opts.Validate(), draOpts.Validate(), m.Validate()) },
		Serve:    func(ctx context.Context) error { return serve(ctx, opts, draOpts, &m) }}.Run(args)
}

func serve(ctx context.Context, opts daemon.Options, draOpts dra.Options, m *manager.Flags) error {
	if draOpts.On() {
		// The CNI path reports the devices claims prepared from the DRA
		// driver's checkpoints.
		opts.DRACheckpointDir = draOpts.CheckpointDir
	}
	mgr, err := m.New(ctrl.Options{Cache: daemon.CacheOptions(opts.NodeName)})
	if err != nil {
		return err
	}
	d, err := daemon.New(opts, mgr.GetClient(), mgr.GetAPIReader(), crmetrics.Registry, ctrl.Log.WithName("daemon"))
	if err != nil {
		return err
	}
	if err := d.Watch(ctx, mgr.GetCache()); err != nil {
		return err
	}
	if err := manager.AddProbes(mgr, func(*http.Request) error { return d.Ready() }); err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	// Not ready while the API server does not answer: ADDs could not
	// record what they plug (internal/daemon/apiserver.go).
	readyz := func(ctx context.Context) error {
		return kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	}
	// The start-up reconcile of checkpoints runs once the cache has
	// synced; the socket listens meanwhile, and CNI requests wait for it.
	if err := mgr.Add(runnable(func(ctx context.Context) error { return d.ReconcileAtStart(ctx, mgr.GetCache()) })); err != nil {
		return err
	}
	// The pool's idle devices and the node's capability labels.
	for _, r := range []runnable{d.KeepPoolIdle, d.LabelNode} {
		if err := mgr.Add(r); err != nil {
			return err
		}
	}
	ln, err := cniapi.Listen(opts.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Socket, err)
	}
	srv := cniapi.NewServer(d, cniapi.WithReadiness(d.Ready), cniapi.WithLogger(ctrl.Log.WithName("cni")),
		cniapi.WithLimits(opts.CNILimits))
	if err := addDRA(mgr, kube, opts, draOpts); err != nil {
		return err
	}
	klog.InfoS("starting kuryr-daemon", "version", version.Version, "node", opts.NodeName, "socket", opts.Socket, "primary", opts.Primary)
	// The socket and the API server's probe run from the start, not as
	// manager runnables: those start only once the caches synced, and a
	// daemon started while the API server is down would hold the runtime's
	// calls unanswered (a DEL has no time limit) and not say why it is not
	// ready. Until the start-up reconcile ran, requests answer code 11.
	return runBeside(ctx, func(ctx context.Context) error { return manager.Start(ctx, mgr) },
		func(ctx context.Context) error { return srv.Serve(ctx, ln) },
		func(ctx context.Context) error { return d.WatchAPIServer(ctx, readyz, daemon.APIServerProbePeriod) })
}

// runBeside runs main and every one of beside until main returns or one of
// beside fails, and returns the first error.
func runBeside(ctx context.Context, main func(context.Context) error, beside ...func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make(chan error, len(beside))
	for _, fn := range beside {
		go func() {
			err := fn(ctx)
			if err != nil {
				cancel(err)
			}
			errs <- err
		}()
	}
	err := main(ctx)
	cancel(nil)
	for range beside {
		if e := <-errs; err == nil {
			err = e
		}
	}
	return err
}

// addDRA runs the DRA kubelet plugin for the node's DPDK ports
// (internal/dra) when --dra says so: by default where the kubelet's plugin
// registry directory exists. It shares the daemon's node, sysfs root,
// device-info root and device timeout.
func addDRA(mgr ctrl.Manager, kube kubernetes.Interface, opts daemon.Options, draOpts dra.Options) error {
	if !draOpts.On() {
		klog.InfoS("DRA kubelet plugin off", "dra", draOpts.Enabled, "registrarDir", draOpts.RegistrarDir)
		return nil
	}
	draOpts.NodeName, draOpts.SysfsRoot, draOpts.DevInfoRoot = opts.NodeName, opts.SysfsRoot, opts.DevInfoRoot
	draOpts.DeviceTimeout = opts.DeviceTimeout
	// The manager's cache already watches the node's KuryrNode
	// (daemon.CacheOptions): one watch for the daemon and the driver.
	draOpts.NodeCache = mgr.GetCache()
	// The daemon's reader of the API server itself: a Prepare confirms a
	// refusal with it, as the CNI ADD does.
	draOpts.NodeReader = mgr.GetAPIReader()
	// Its metrics are served beside the daemon's.
	draOpts.Metrics = crmetrics.Registry
	drv, err := dra.New(draOpts, mgr.GetConfig(), kube, mgr.GetScheme(), ctrl.Log.WithName("dra"))
	if err != nil {
		return err
	}
	// The CNI path does not depend on the plugin: if it stops, the daemon
	// goes on serving CNI calls and says why the plugin stopped.
	return mgr.Add(runnable(func(ctx context.Context) error {
		if err := drv.Run(ctx); err != nil {
			klog.ErrorS(err, "DRA kubelet plugin stopped; CNI calls are still served", "driver", dra.DriverName)
		}
		return nil
	}))
}

// runnable adapts a function to a manager Runnable that runs on every
// replica (a daemon has no leader).
type runnable func(context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (r runnable) NeedLeaderElection() bool        { return false }
