// Command kuryrctl: the operator's tool: node prerequisites check, pods' interfaces with PCI addresses and drivers, pools.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kuryrctl", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryrctl [flags]\n\n%s\n\nFlags:\n", "the operator's tool: node prerequisites check, pods' interfaces with PCI addresses and drivers, pools.")
		fs.PrintDefaults()
	}
	return version.NotYet(fs, args, os.Stderr, "the operator CLI", "a later issue")
}
