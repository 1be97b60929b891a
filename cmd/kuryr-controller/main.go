// Command kuryr-controller: watches Pods and NetworkAttachmentDefinitions and creates their interfaces in OpenStack (Neutron ports, trunk subports, Nova interface attachments), recording them in a per-pod resource.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("kuryr-controller", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryr-controller [flags]\n\n%s\n\nFlags:\n", "watches Pods and NetworkAttachmentDefinitions and creates their interfaces in OpenStack (Neutron ports, trunk subports, Nova interface attachments), recording them in a per-pod resource.")
		fs.PrintDefaults()
	}
	return version.NotYet(fs, args, os.Stderr, "the controller", "issue 4 (kuryr-controller)")
}
