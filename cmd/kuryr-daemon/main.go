// Command kuryr-daemon: runs on each node VM, serves the CNI shim on a unix socket, plugs VLAN/MACVLAN interfaces into pod namespaces and binds DPDK devices.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kuryr-daemon", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryr-daemon [flags]\n\n%s\n\nFlags:\n", "runs on each node VM, serves the CNI shim on a unix socket, plugs VLAN/MACVLAN interfaces into pod namespaces and binds DPDK devices.")
		fs.PrintDefaults()
	}
	return version.NotYet(fs, args, os.Stderr, "the node daemon", "issue 5 (kuryr-daemon and kuryr-cni)")
}
