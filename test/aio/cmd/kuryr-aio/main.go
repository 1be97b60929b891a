// Command kuryr-aio runs the all-in-one environment: a real Kubernetes
// control plane on 127.0.0.1, the simulated OpenStack cloud, simulated node
// VMs in network namespaces, kuryr-controller, one kuryr-daemon per node and
// a real containerd and kubelet per node (or, with --real-nodes=false, a
// kubelet stand-in).
//
//	kuryr-aio run    start, run the demo, keep running until Ctrl-C
//	kuryr-aio demo   start, run the demo, print the table, tear down;
//	                 exit 0 only if every demo interface is ready
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: kuryr-aio run|demo [flags]\n\n"+
		"  run   start the all-in-one, create the demo, print its table and the kubeconfig,\n"+
		"        keep running until Ctrl-C (SIGINT/SIGTERM), then remove everything it made\n"+
		"  demo  the same, but tear down after the table; exit 0 only if every demo\n"+
		"        interface is ready\n\nNeeds root (network namespaces).\n\nFlags:\n")
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kuryr-aio", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts aio.Options
	var timeout time.Duration
	fs.IntVar(&opts.Nodes, "nodes", 2, "number of simulated node VMs")
	fs.StringVar(&opts.BinDir, "bin-dir", "", "directory with kuryr-controller, kuryr-daemon, kuryr-cni (built with go build when empty)")
	fs.StringVar(&opts.KubeBinDir, "kube-bin-dir", "", "directory with etcd, kube-apiserver, kube-scheduler, kube-controller-manager (hack/build-kube-bins.sh's cache when empty)")
	fs.BoolVar(&opts.RealNodes, "real-nodes", true, "run a real containerd and kubelet per node (false: the kubelet stand-in, for many nodes)")
	fs.StringVar(&opts.NodeBinDir, "node-bin-dir", "", "directory with containerd, containerd-shim-runc-v2, ctr, runc, kubelet (hack/build-node-bins.sh's cache when empty; --real-nodes)")
	fs.BoolVar(&opts.Multus, "multus", false, "real Multus as the nodes' CNI, kuryr-cni its delegate (docs/multus.md; --real-nodes; build it first with hack/build-multus.sh)")
	fs.StringVar(&opts.MultusBinDir, "multus-bin-dir", "", "directory with multus and thin_entrypoint (hack/build-multus.sh's cache when empty; --multus)")
	fs.BoolVar(&opts.DRA, "dra", true, "DPDK pools on and the demo pod's DPDK port through a DRA ResourceClaim (docs/dra.md; --real-nodes, ignored without)")
	fs.StringVar(&opts.RepoRoot, "repo", "", "the kuryr-dpdk repository (found from the working directory when empty)")
	fs.DurationVar(&timeout, "demo-timeout", 2*time.Minute, "how long the demo pod may take to be ready")
	fs.Usage = func() { usage(stderr, fs) }
	if len(args) == 0 || (args[0] != "run" && args[0] != "demo") {
		usage(stderr, fs)
		return 2
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	opts.DRA = opts.DRA && opts.RealNodes
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "kuryr-aio: %v\n", aio.ErrNotRoot)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts.Log = stderr

	env, err := aio.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "kuryr-aio: %v\n", err)
		return 1
	}
	code := 0
	if opts.DRA {
		fmt.Fprintf(stdout, "\n== demo: NAD %q (%s), ResourceClaimTemplate %q (a DPDK port of DeviceClass %s), pod %s/dpdk-app asking for both\n",
			aio.MgmtNAD, env.MgmtDriver, aio.DemoClaimTemplate, aio.DRAClass, aio.DemoNamespace)
	} else {
		fmt.Fprintf(stdout, "\n== demo: NADs %q (%s) and %q (nested-dpdk), pod %s/dpdk-app asking for both\n",
			aio.MgmtNAD, env.MgmtDriver, aio.DataPlaneNAD, aio.DemoNamespace)
	}
	if err := env.RunDemo(ctx, stdout, timeout); err != nil {
		fmt.Fprintf(stderr, "kuryr-aio: demo: %v\n", err)
		code = 1
	}
	if cmd == "run" && ctx.Err() == nil {
		fmt.Fprintf(stdout, "\nThe all-in-one is running. Kubeconfig (admin):\n\n    %s\n\n"+
			"    export KUBECONFIG=%s\n    %s get nodes -o wide\n    kubectl get pods,kuryrpods -A\n"+
			"    kubectl -n kuryr-dpdk exec ds/kuryr-daemon -- kuryrctl devices   (real nodes)\n\n"+
			"Node namespaces: ip netns exec %s ip link   (and -node-2, …)\nLogs: %s\n"+
			"Ctrl-C stops it and removes every namespace, process and file it made.\n",
			env.Kubeconfig(), env.Kubeconfig(), env.Kubectl(), "kuryr-aio-"+env.ID+"-node-1", env.LogDir())
		<-ctx.Done()
		fmt.Fprintln(stderr, "kuryr-aio: stopping")
		code = 0
	}
	if err := env.Close(); err != nil {
		fmt.Fprintf(stderr, "kuryr-aio: teardown: %v\n", err)
		return 1
	}
	fmt.Fprintln(stderr, "kuryr-aio: everything removed")
	if code == 0 && cmd == "demo" && errors.Is(ctx.Err(), context.Canceled) {
		return 1
	}
	return code
}
