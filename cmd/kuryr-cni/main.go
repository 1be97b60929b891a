// Command kuryr-cni: the CNI plugin the container runtime or Multus executes; it forwards the request to kuryr-daemon and prints its answer.
//
// It speaks CNI 0.3.1, 0.4.0, 1.0.0 and 1.1.0 (ADD, CHECK, DEL, STATUS, GC,
// VERSION) through containernetworking's skel, and writes nothing on stdout
// but the CNI result or error. See docs/cni.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		return flags(args, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The node-local file naming the daemon's socket is next to the
	// binary; without a path to the binary only the default applies.
	nodeDir := ""
	if exe, err := os.Executable(); err == nil {
		nodeDir = filepath.Dir(exe)
	}
	s := newShim(ctx, stdout, stderr, nodeDir)
	about := fmt.Sprintf("kuryr-cni %s: forwards CNI calls to kuryr-daemon", version.Version)
	if e := skel.PluginMainFuncsWithError(s.funcs(), cniversion.PluginSupports(cniapi.SupportedVersions...), about); e != nil {
		// The CNI error, as JSON on stdout, is the answer the runtime reads.
		if err := json.NewEncoder(stdout).Encode(e); err != nil {
			fmt.Fprintf(stderr, "kuryr-cni: write the error to stdout: %v\n", err)
		}
		return 1
	}
	return 0
}

// flags handles a command line: kuryr-cni is normally run without one (the
// CNI protocol is environment and stdin), so arguments mean a human.
func flags(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kuryr-cni", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuryr-cni [flags]\n\n%s\n\nFlags:\n",
			"the CNI plugin the container runtime or Multus executes; it forwards the request to kuryr-daemon and prints its answer. Run it with CNI_COMMAND and the other CNI variables set, and the configuration on stdin.")
		fs.PrintDefaults()
	}
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stderr, "kuryr-cni %s\n", version.Version)
		return 0
	}
	fs.Usage()
	return 2
}
