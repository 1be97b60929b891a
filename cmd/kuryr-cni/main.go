// Command kuryr-cni: the CNI plugin the container runtime or Multus executes; it forwards the request to kuryr-daemon and prints its answer.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kuryr-cni", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryr-cni [flags]\n\n%s\n\nFlags:\n", "the CNI plugin the container runtime or Multus executes; it forwards the request to kuryr-daemon and prints its answer.")
		fs.PrintDefaults()
	}
	return version.NotYet(fs, args, os.Stderr, "the CNI shim", "issue 5 (kuryr-daemon and kuryr-cni)")
}
