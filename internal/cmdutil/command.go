package cmdutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

// Command is the main of a long-running binary: its name, its flags, the
// check of its options and what it serves.
type Command struct {
	Name  string
	Flags *flag.FlagSet
	// Validate checks the options once the flags are parsed.
	Validate func() error
	// Serve runs until ctx ends (SIGINT or SIGTERM) or it fails.
	Serve func(ctx context.Context) error
}

// Run adds --version and klog's flags to c.Flags, parses args, prints the
// version or the help if asked, validates, makes klog controller-runtime's
// logger and serves. It returns the exit code: 0, 2 for bad flags or
// options, 1 when serving fails.
func (c Command) Run(args []string) int {
	showVersion := c.Flags.Bool("version", false, "print the version and exit")
	AddKlogFlags(c.Flags)
	if err := c.Flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println(c.Name, version.Version)
		return 0
	}
	if err := c.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid options:\n%v\n", c.Name, err)
		return 2
	}
	crlog.SetLogger(klog.NewKlogr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Serve(ctx); err != nil {
		klog.ErrorSDepth(1, err, c.Name+" stopped")
		return 1
	}
	return 0
}
