// Package controller is kuryr-controller's logic: for each pod scheduled on
// a nested node it works out the interfaces the pod needs, creates them in
// OpenStack (trunk subports, allowed address pairs, Nova interface
// attachments), records them in a KuryrPod, releases them when the pod goes,
// and garbage-collects what a crash left behind.
package controller

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// Options configure the controller. They come from a YAML config file
// (--config) and flags; flags given on the command line win.
type Options struct {
	// ClusterID tags every port this controller makes, so that the garbage
	// collector only ever touches its own.
	ClusterID string `json:"clusterID"`
	// ClusterUID is the UID of the cluster's kube-system namespace, read
	// at start (SetupWithManager), never configured: with ClusterID it
	// tells this cluster's ports from those of another cluster given the
	// same ClusterID in the project.
	ClusterUID string `json:"-"`
	// Primary: kuryr-dpdk is the cluster's primary CNI; every pod gets eth0.
	Primary bool `json:"primary"`
	// DefaultDriver is the node's default driver (nested-vlan or nested-macvlan)
	// for eth0 and for NADs that name no driver.
	DefaultDriver v1alpha1.Driver `json:"defaultDriver"`
	// PodSubnetID is the Neutron subnet of eth0 (primary mode).
	PodSubnetID string `json:"podSubnetID"`
	// PodSecurityGroups are used when a network names none.
	PodSecurityGroups []string `json:"podSecurityGroups"`
	// WorkerSubnetIDs are the subnets of the node VMs' own ports, used to
	// find a node's port from its InternalIP when it has no providerID.
	WorkerSubnetIDs []string `json:"workerSubnetIDs"`
	// DefaultDPDKDriver: uio_pci_generic or vfio-pci.
	DefaultDPDKDriver string `json:"defaultDPDKDriver"`
	// AllowCrossNamespaceNetworks lets pods use NADs of other namespaces.
	AllowCrossNamespaceNetworks bool `json:"allowCrossNamespaceNetworks"`

	// ActiveTimeout bounds the wait for an interface to become ACTIVE,
	// counted from when the pod's interfaces began to wait with every
	// cloud call answered (waitClock).
	ActiveTimeout Duration `json:"activeTimeout"`
	// GCPeriod is how often ports of vanished pods are looked for.
	GCPeriod Duration `json:"gcPeriod"`
	// ReleaseGrace bounds how long a deleted pod's interfaces wait for the
	// daemon to unplug them before they are released anyway.
	ReleaseGrace Duration `json:"releaseGrace"`
	// ReleaseTimeout bounds how long a deleted pod (or KuryrPod) waits
	// for the cloud to release its ports: past it, its finalizers are
	// dropped anyway and the ports are left to the garbage collector,
	// which retries every GCPeriod. A cloud outage does not hold pod
	// deletion forever.
	ReleaseTimeout Duration `json:"releaseTimeout"`
	// Workers is the number of pods handled at once. Waits (for ACTIVE,
	// for a detach) hold no worker, but a pod's first reconcile holds one
	// through its Kubernetes writes (finalizer, KuryrPod, KuryrNode,
	// status) and its cloud calls; pods created together queue for a
	// worker before their KuryrPod appears (8 workers: 1.1 s mean queue
	// wait at N=100, docs/benchmarks.md). Cloud writes are bounded apart
	// (MaxCloudWrites), so more workers do not mean more concurrent
	// writes to Neutron.
	Workers int `json:"workers"`
	// MaxCloudWrites bounds the OpenStack writes (creates, deletes, tag,
	// trunk, address pair and Nova attach calls) in flight at once, pools
	// included; 0 is no bound.
	MaxCloudWrites int `json:"maxCloudWrites"`
	// Pools keep ports ready per (node, subnet, security groups) so that a
	// pod's interface costs one Neutron call. Off unless max is set.
	Pools PoolOptions `json:"pools"`
	// HotplugSlots is how many ports Nova may hot-attach to each node VM
	// besides its own port (the PCIe root ports it boots with); a Node's
	// kuryr-dpdk.io/hotplug-slots annotation overrides it. 0: not counted.
	HotplugSlots int `json:"hotplugSlots"`
}

// PoolOptions size the pools of each driver that has them.
type PoolOptions struct {
	NestedVLAN    PoolSize `json:"nestedVLAN"`
	NestedMACVLAN PoolSize `json:"nestedMACVLAN"`
	// NestedDPDK sizes the pools of pre-attached nested-dpdk ports (Nova
	// attaches them ahead of any pod or claim); a Node's
	// kuryr-dpdk.io/dpdk-pool-size annotation overrides it for that node.
	NestedDPDK PoolSize `json:"nestedDPDK"`
	// NestedVLANNetworks, NestedMACVLANNetworks and NestedDPDKNetworks
	// are the pools made on every node ahead of any consumer, per driver
	// (sized by that driver's PoolSize and the node's annotation);
	// otherwise a pool is made by the first pod that misses it. A cluster
	// whose pods ask for DPDK ports only through DRA claims needs
	// NestedDPDKNetworks. A pod's interface takes from a declared pool
	// when its driver, subnet and security groups are the same; a
	// declared network that names no security groups gets
	// podSecurityGroups, as a pod's network that names none does.
	NestedVLANNetworks    []PoolNetwork `json:"nestedVLANNetworks,omitempty"`
	NestedMACVLANNetworks []PoolNetwork `json:"nestedMACVLANNetworks,omitempty"`
	NestedDPDKNetworks    []PoolNetwork `json:"nestedDPDKNetworks,omitempty"`
}

// driverPools is one driver's pool settings: its size, its declared
// networks and the name of its size field in the config file.
type driverPools struct {
	field    string
	driver   v1alpha1.Driver
	size     PoolSize
	networks []PoolNetwork
}

// byDriver lists every driver's pool settings, in a fixed order (the
// errors of Validate come out the same every run).
func (o PoolOptions) byDriver() []driverPools {
	return []driverPools{
		{"pools.nestedVLAN", v1alpha1.DriverNestedVLAN, o.NestedVLAN, o.NestedVLANNetworks},
		{"pools.nestedMACVLAN", v1alpha1.DriverNestedMACVLAN, o.NestedMACVLAN, o.NestedMACVLANNetworks},
		{"pools.nestedDPDK", v1alpha1.DriverNestedDPDK, o.NestedDPDK, o.NestedDPDKNetworks},
	}
}

// declaredGroups are the security groups of the ports of declared pool
// network n: its own, else the pod default, which is what a pod's
// interface on that network asks for (networks.Plan), so that the pool's
// key is the one the pod looks for.
func (o *Options) declaredGroups(n PoolNetwork) []string {
	if len(n.SecurityGroups) > 0 {
		return n.SecurityGroups
	}
	return o.PodSecurityGroups
}

// PoolNetwork names the ports of one declared pool.
type PoolNetwork struct {
	SubnetID string `json:"subnetID"`
	// +optional
	SecurityGroups []string `json:"securityGroups,omitempty"`
}

// PoolSize sizes one pool. Max 0 turns the driver's pools off.
type PoolSize struct {
	// Min ready ports: below it the pool is refilled.
	Min int `json:"min"`
	// Max ready ports (created, wired, waiting): a released port goes back
	// to the pool only below it, and a refill never goes above it.
	Max int `json:"max"`
	// Batch is how many ports one refill makes: one bulk create and one
	// wiring call (add_subports, or one allowed-address-pairs update).
	Batch int `json:"batch"`
}

// poolSizeError is what is wrong with a PoolSize; field is "" or ".batch".
type poolSizeError struct{ field, msg string }

// validate checks s: all zero (off), or 0 <= min <= max, max >= 1 and
// batch within 1..max.
func (s PoolSize) validate() *poolSizeError {
	switch {
	case s == (PoolSize{}):
	case s.Min < 0 || s.Max < 1 || s.Min > s.Max:
		return &poolSizeError{"", fmt.Sprintf("min %d and max %d must satisfy 0 <= min <= max, max >= 1", s.Min, s.Max)}
	case s.Batch < 1 || s.Batch > s.Max:
		return &poolSizeError{".batch", fmt.Sprintf("%d must be within 1..max (%d)", s.Batch, s.Max)}
	}
	return nil
}

// on says whether the pools of this size are on.
func (s PoolSize) on() bool { return s.Max > 0 }

// size returns the pool size of driver d (off for drivers without pools).
func (o PoolOptions) size(d v1alpha1.Driver) PoolSize {
	switch d {
	case v1alpha1.DriverNestedVLAN:
		return o.NestedVLAN
	case v1alpha1.DriverNestedMACVLAN:
		return o.NestedMACVLAN
	case v1alpha1.DriverNestedDPDK:
		return o.NestedDPDK
	}
	return PoolSize{}
}

// Duration is a time.Duration written as "30s" in the config file.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s or 2m", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Defaults returns the options an operator gets without configuration.
func Defaults() Options {
	return Options{
		ClusterID:         "kuryr-dpdk",
		DefaultDriver:     v1alpha1.DriverNestedVLAN,
		DefaultDPDKDriver: v1alpha1.DPDKDriverUIOPCIGeneric,
		ActiveTimeout:     Duration{3 * time.Minute},
		GCPeriod:          Duration{5 * time.Minute},
		ReleaseGrace:      Duration{2 * time.Minute},
		ReleaseTimeout:    Duration{10 * time.Minute},
		Workers:           32,
		MaxCloudWrites:    16,
	}
}

// LoadFile reads a YAML config file over o. Unknown fields are errors that
// name the field.
func (o *Options) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, o); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// AddFlags registers the options as flags on fs, with o's values as defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.ClusterID, "cluster-id", o.ClusterID, "tag put on every port this controller creates; the garbage collector touches only ports with it")
	fs.BoolVar(&o.Primary, "primary", o.Primary, "kuryr-dpdk is the cluster's primary CNI: every pod gets eth0 from the default driver")
	fs.Func("default-driver", "driver of eth0 and of NADs that name none: nested-vlan or nested-macvlan (default "+string(o.DefaultDriver)+")", func(s string) error {
		o.DefaultDriver = v1alpha1.Driver(s)
		return nil
	})
	fs.StringVar(&o.PodSubnetID, "pod-subnet-id", o.PodSubnetID, "Neutron subnet of eth0 (primary mode)")
	fs.Func("pod-security-groups", "comma-separated security groups for networks that name none", func(s string) error {
		o.PodSecurityGroups = splitList(s)
		return nil
	})
	fs.Func("worker-subnet-ids", "comma-separated subnets of the node VMs' ports (parent lookup by InternalIP)", func(s string) error {
		o.WorkerSubnetIDs = splitList(s)
		return nil
	})
	fs.StringVar(&o.DefaultDPDKDriver, "default-dpdk-driver", o.DefaultDPDKDriver, "uio_pci_generic or vfio-pci")
	fs.BoolVar(&o.AllowCrossNamespaceNetworks, "allow-cross-namespace-networks", o.AllowCrossNamespaceNetworks, "let pods use NetworkAttachmentDefinitions of other namespaces")
	fs.DurationVar(&o.ActiveTimeout.Duration, "active-timeout", o.ActiveTimeout.Duration, "how long an interface may wait to become ACTIVE (with the cloud answering) before it is failed")
	fs.DurationVar(&o.GCPeriod.Duration, "gc-period", o.GCPeriod.Duration, "how often ports of vanished pods are released")
	fs.DurationVar(&o.ReleaseGrace.Duration, "release-grace", o.ReleaseGrace.Duration, "how long a deleted pod's interfaces wait for the daemon to unplug them")
	fs.DurationVar(&o.ReleaseTimeout.Duration, "release-timeout", o.ReleaseTimeout.Duration, "how long a deleted pod waits for the cloud to release its ports before its finalizers are dropped and the garbage collector takes over")
	fs.IntVar(&o.Workers, "workers", o.Workers, "pods handled at once")
	fs.IntVar(&o.MaxCloudWrites, "max-cloud-writes", o.MaxCloudWrites, "OpenStack writes in flight at once (0: no bound)")
	poolFlags(fs, "nested-vlan", &o.Pools.NestedVLAN)
	poolFlags(fs, "nested-macvlan", &o.Pools.NestedMACVLAN)
	poolFlags(fs, "nested-dpdk", &o.Pools.NestedDPDK)
	fs.IntVar(&o.HotplugSlots, "hotplug-slots", o.HotplugSlots, "ports Nova may hot-attach to each node VM besides its own (its free PCIe root ports); a node's "+
		v1alpha1.HotplugSlotsAnnotation+" annotation overrides it; 0: not counted")
}

func poolFlags(fs *flag.FlagSet, driver string, s *PoolSize) {
	fs.IntVar(&s.Min, "pool-"+driver+"-min", s.Min, "ready "+driver+" ports kept per pool (node, subnet, security groups)")
	fs.IntVar(&s.Max, "pool-"+driver+"-max", s.Max, "most ready "+driver+" ports per pool; 0 turns its pools off")
	fs.IntVar(&s.Batch, "pool-"+driver+"-batch", s.Batch, driver+" ports made by one refill (one bulk create)")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate checks every option and returns all problems at once, each
// naming its field.
func (o *Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if o.ClusterID == "" || strings.ContainsAny(o.ClusterID, ", /") {
		bad("clusterID", "%q must be non-empty without commas, spaces or slashes (it goes into Neutron tags)", o.ClusterID)
	}
	switch o.DefaultDriver {
	case v1alpha1.DriverNestedVLAN, v1alpha1.DriverNestedMACVLAN:
	default:
		bad("defaultDriver", "%q must be nested-vlan or nested-macvlan", o.DefaultDriver)
	}
	if o.Primary && o.PodSubnetID == "" {
		bad("podSubnetID", "required in primary mode (the subnet of every pod's eth0)")
	}
	switch o.DefaultDPDKDriver {
	case v1alpha1.DPDKDriverUIOPCIGeneric, v1alpha1.DPDKDriverVFIOPCI:
	default:
		bad("defaultDPDKDriver", "%q must be uio_pci_generic or vfio-pci", o.DefaultDPDKDriver)
	}
	if o.ActiveTimeout.Duration <= 0 {
		bad("activeTimeout", "%s must be positive", o.ActiveTimeout)
	}
	if o.GCPeriod.Duration < time.Second {
		bad("gcPeriod", "%s must be at least 1s", o.GCPeriod)
	}
	if o.ReleaseGrace.Duration < 0 {
		bad("releaseGrace", "%s must not be negative", o.ReleaseGrace)
	}
	if o.ReleaseTimeout.Duration <= 0 {
		bad("releaseTimeout", "%s must be positive", o.ReleaseTimeout)
	}
	if o.Workers < 1 || o.Workers > 1000 {
		bad("workers", "%d must be within 1..1000", o.Workers)
	}
	if o.MaxCloudWrites < 0 {
		bad("maxCloudWrites", "%d must not be negative", o.MaxCloudWrites)
	}
	if o.HotplugSlots < 0 || o.HotplugSlots > maxHotplugSlots {
		bad("hotplugSlots", "%d must be within 0..%d", o.HotplugSlots, maxHotplugSlots)
	}
	for _, d := range o.Pools.byDriver() {
		if err := d.size.validate(); err != nil {
			bad(d.field+err.field, "%s", err.msg)
		}
		nets := d.field + "Networks"
		if len(d.networks) > 0 && !d.size.on() {
			bad(nets, "needs %s (its size; max 0 turns the %s pools off)", d.field, d.driver)
		}
		for i, n := range d.networks {
			if !netconf.ValidNeutronID(n.SubnetID) {
				bad(fmt.Sprintf("%s[%d].subnetID", nets, i), "%q is not a Neutron ID", n.SubnetID)
			}
			for j, g := range n.SecurityGroups {
				if !netconf.ValidNeutronID(g) {
					bad(fmt.Sprintf("%s[%d].securityGroups[%d]", nets, i, j), "%q is not a Neutron ID", g)
				}
			}
			// A pod's interface with no security groups is never pooled
			// (pools.eligible); a claim takes a DPDK port whatever they are.
			if d.driver != v1alpha1.DriverNestedDPDK && len(o.declaredGroups(n)) == 0 {
				bad(fmt.Sprintf("%s[%d].securityGroups", nets, i), "empty and podSecurityGroups empty: no pod could take a port of this pool")
			}
		}
	}
	return errors.Join(errs...)
}
