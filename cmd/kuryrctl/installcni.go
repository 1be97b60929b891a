package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/ctl"
)

// installCNI is `kuryrctl install-cni`: the DaemonSet's init container,
// which has no shell, runs it to put the shim and its network configuration
// on the host.
func installCNI(args []string, stdout, stderr io.Writer) int {
	o := ctl.DefaultInstallCNIOptions()
	fs := flag.NewFlagSet("kuryrctl install-cni", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Shim, "shim", o.Shim, "the kuryr-cni binary to install")
	fs.StringVar(&o.BinDir, "cni-bin-dir", o.BinDir, "the runtime's CNI binary directory")
	fs.StringVar(&o.ConfDir, "cni-conf-dir", o.ConfDir, "the runtime's CNI configuration directory")
	fs.StringVar(&o.ConflistName, "conflist-name", o.ConflistName, "file name of the network configuration in --cni-conf-dir")
	fs.StringVar(&o.Conflist, "conflist", o.Conflist, "a network configuration list to install as it is (default: one made from --network-name)")
	fs.StringVar(&o.NetworkName, "network-name", o.NetworkName, "the network's name in the generated configuration")
	fs.StringVar(&o.DaemonSocket, "daemon-socket", o.DaemonSocket, "kuryr-daemon's socket, written next to the shim ("+cniapi.NodeConfigName+"), the only place the shim takes it from")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kuryrctl install-cni: unexpected arguments %q\n", fs.Args())
		return 2
	}
	done, err := ctl.InstallCNI(o)
	for _, d := range done {
		what := "installed"
		if !d.Changed {
			what = "unchanged"
		}
		fmt.Fprintln(stdout, what, d.Path)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kuryrctl install-cni:", err)
		return 1
	}
	return 0
}
