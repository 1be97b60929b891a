// Command kuryr-cloudsim serves the simulated OpenStack cloud (Keystone v3,
// Neutron v2.0, Nova v2.1) of internal/cloudsim on one address, seeded from
// a YAML or JSON configuration file, for the all-in-one run, benchmarks and
// trying things with curl. See docs/cloudsim.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	config    string
	listen    string
	advertise string
	noAuth    bool
	version   bool
}

func (o *options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.config, "config", "", "YAML or JSON configuration file: credentials, knobs, seeds (see docs/cloudsim.md)")
	fs.StringVar(&o.listen, "listen", "", "address to serve on (default from the config, else 127.0.0.1:8900)")
	fs.StringVar(&o.advertise, "advertise-url", "", "base URL the Keystone catalog gives out (default http://<listen address>)")
	fs.BoolVar(&o.noAuth, "noauth", false, "serve Neutron and Nova without tokens (create bodies then need project_id)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kuryr-cloudsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.addFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kuryr-cloudsim [flags]\n\nServes a simulated OpenStack (Keystone v3, Neutron v2.0, Nova v2.1) until interrupted.\n"+
			"On start it prints the OS_* variables to reach it and, as JSON, what it seeded.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "kuryr-cloudsim %s\n", version.Version)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "kuryr-cloudsim: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, o options, stdout io.Writer) error {
	var cfg cloudsim.Config
	if o.config != "" {
		var err error
		if cfg, err = cloudsim.LoadConfig(o.config); err != nil {
			return err
		}
	}
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8900"
	}
	if o.advertise != "" {
		cfg.AdvertiseURL = o.advertise
	}
	cfg.NoAuth = cfg.NoAuth || o.noAuth
	c := cloudsim.New(cfg.Options())
	if cfg.AdvertiseURL != "" {
		c.SetBaseURL(cfg.AdvertiseURL)
	}
	seeded, err := cfg.ApplySeeds(c)
	if err != nil {
		return err
	}
	if err := c.Start(ctx, cfg.Listen); err != nil {
		return err
	}
	defer c.Close()
	cr := c.Credentials()
	fmt.Fprintf(stdout, "# kuryr-cloudsim serving on %s (Ctrl-C to stop)\n", c.URL())
	fmt.Fprintf(stdout, "export OS_AUTH_URL=%s OS_USERNAME=%s OS_PASSWORD=%s OS_PROJECT_NAME=%s "+
		"OS_USER_DOMAIN_NAME=%s OS_PROJECT_DOMAIN_NAME=%s OS_REGION_NAME=%s\n",
		c.AuthURL(), cr.UserName, cr.Password, cr.ProjectName, cr.DomainName, cr.DomainName, cr.Region)
	fmt.Fprintf(stdout, "# neutron: %s  nova: %s  noauth: %v\n", c.NeutronURL(), c.NovaURL(), cfg.NoAuth)
	b, _ := json.Marshal(seeded)
	fmt.Fprintf(stdout, "%s\n", b)
	<-ctx.Done()
	return nil
}
