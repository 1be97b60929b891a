// Command kuryrctl is the operator's tool for kuryr-dpdk: it checks a node
// VM's prerequisites for DPDK interfaces, lists pods' interfaces with their
// PCI addresses and drivers, lists a node's virtio devices, and installs the
// CNI shim on a node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/ctl"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `Usage: kuryrctl COMMAND [flags]

The operator's tool for kuryr-dpdk.

Commands:
  check        check this node VM's prerequisites for DPDK interfaces (hugepages,
               uio_pci_generic, vfio-pci with an IOMMU, iommu_platform on virtio devices)
               and, with --node (default $NODE_NAME), that the node OS left its idle
               pre-attached DPDK NICs alone (down, no address, udev's name);
               exits 1 when DPDK interfaces cannot work here
  interfaces   list pods' interfaces: driver, state, MAC, IPs, VLAN ID, PCI address, bound driver
  pools        list the controller's port pools per node: ready, warming, in use,
               target (-o json for a JSON list)
  devices      list this node VM's virtio network devices with their drivers
  install-cni  install kuryr-cni and its network configuration into the runtime's CNI
               directories (atomically; the DaemonSet's init container runs it)
  version      print the version

Run 'kuryrctl COMMAND --help' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, args := args[0], args[1:]
	if cmd == "install-cni" {
		return installCNI(args, stdout, stderr)
	}
	fs := flag.NewFlagSet("kuryrctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("sysfs-root", "/", "root of the node's files to read (<root>/sys; check: also <root>/run, <root>/etc)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	namespace := fs.String("namespace", "", "only pods of this namespace")
	node := fs.String("node", "", "only pods on this node (pools: only this node's; check: this node's pool NICs, default $NODE_NAME)")
	output := fs.String("o", "table", "output format of pools: table or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch cmd {
	case "check":
		r := ctl.Check(*root)
		r.CheckPoolNICs(poolNICs(*root, *kubeconfig, *node))
		r.Write(stdout)
		if !r.OK() {
			return 1
		}
		return 0
	case "devices":
		return devices(*root, stdout, stderr)
	case "interfaces":
		return interfaces(*kubeconfig, *namespace, *node, stdout, stderr)
	case "pools":
		return pools(*kubeconfig, *node, *output, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kuryrctl", version.Version)
		return 0
	}
	fmt.Fprintf(stderr, "kuryrctl: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// poolNICs reads the idle pre-attached DPDK devices of node (default
// $NODE_NAME) from its KuryrNode, for check.
func poolNICs(root, kubeconfig, node string) ctl.PoolNICs {
	p := ctl.PoolNICs{Root: root}
	if node == "" {
		node = os.Getenv("NODE_NAME")
	}
	if node == "" {
		p.Err = errors.New("no node named (--node or $NODE_NAME) to read the pool's devices of")
		return p
	}
	c, err := kubeClient(kubeconfig)
	if err != nil {
		p.Err = err
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var kn v1alpha1.KuryrNode
	if err := c.Get(ctx, client.ObjectKey{Name: node}, &kn); err != nil {
		p.Err = fmt.Errorf("read KuryrNode %s: %w", node, err)
		return p
	}
	p.Devices = kn.Status.DPDKDevices
	return p
}

func devices(root string, stdout, stderr io.Writer) int {
	devs, err := pci.New(root).Devices()
	if err != nil {
		fmt.Fprintln(stderr, "kuryrctl:", err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PCI\tDRIVER\tOVERRIDE\tIOMMU GROUP\tNETDEV")
	for _, d := range devs {
		if !d.VirtioNet() {
			continue
		}
		nd := "-"
		if len(d.Netdevs) > 0 {
			nd = d.Netdevs[0].Name + " " + d.Netdevs[0].MAC
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Address, or(d.Driver), or(d.DriverOverride), or(d.IOMMUGroup), nd)
	}
	_ = tw.Flush()
	return 0
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newClient(stderr io.Writer, kubeconfig string) (client.Client, bool) {
	c, err := kubeClient(kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "kuryrctl:", err)
		return nil, false
	}
	return c, true
}

func kubeClient(kubeconfig string) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

func interfaces(kubeconfig, namespace, node string, stdout, stderr io.Writer) int {
	c, ok := newClient(stderr, kubeconfig)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var list v1alpha1.KuryrPodList
	opts := []client.ListOption{client.InNamespace(namespace)}
	if node != "" {
		opts = append(opts, client.MatchingLabels{v1alpha1.NodeLabel: node})
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		fmt.Fprintln(stderr, "kuryrctl: list KuryrPods:", err)
		return 1
	}
	if err := ctl.WriteInterfaces(stdout, list.Items); err != nil {
		fmt.Fprintln(stderr, "kuryrctl:", err)
		return 1
	}
	return 0
}

// pools prints the pools the controller records in the KuryrNodes.
func pools(kubeconfig, node, output string, stdout, stderr io.Writer) int {
	c, ok := newClient(stderr, kubeconfig)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var list v1alpha1.KuryrNodeList
	if err := c.List(ctx, &list); err != nil {
		fmt.Fprintln(stderr, "kuryrctl: list KuryrNodes:", err)
		return 1
	}
	nodes := list.Items
	if node != "" {
		nodes = slices.DeleteFunc(nodes, func(kn v1alpha1.KuryrNode) bool { return kn.Name != node })
	}
	if err := ctl.WritePools(stdout, ctl.Pools(nodes), output); err != nil {
		fmt.Fprintln(stderr, "kuryrctl:", err)
		return 2
	}
	return 0
}
