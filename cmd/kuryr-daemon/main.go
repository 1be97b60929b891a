// Command kuryr-daemon runs on each node VM: it serves the kuryr-cni shim on
// a unix socket, plugs VLAN/MACVLAN interfaces into pod namespaces, binds
// DPDK devices, and reports them. It watches only its own node's pods,
// KuryrPods and KuryrNode, keeps the node's pre-attached DPDK devices down
// and unconfigured, labels its Node with what it offers DPDK, and never
// talks to the cloud.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil/manager"
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
	var m manager.Flags
	m.AddFlags(fs, manager.Defaults{QPS: 20, Burst: 40, MetricsAddr: ":9090", ProbeAddr: ":9091"})
	return cmdutil.Command{Name: "kuryr-daemon", Flags: fs, Validate: opts.Validate,
		Serve: func(ctx context.Context) error { return serve(ctx, opts, &m) }}.Run(args)
}

func serve(ctx context.Context, opts daemon.Options, m *manager.Flags) error {
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
