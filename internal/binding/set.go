package binding

import (
	"fmt"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// Options configure a node's drivers (kuryr-daemon's flags).
type Options struct {
	// SysfsRoot is the root of the sysfs tree (<root>/sys): "/" on a node.
	SysfsRoot string
	// CheckpointDir holds one record per (container, interface).
	CheckpointDir string
	// ClaimCheckpointDir, when set, is the DRA driver's checkpoint
	// directory, read (never written) to report the devices claims
	// prepared (Claimed).
	ClaimCheckpointDir string
	// DevInfoRoot is the root of the NPWG device-info directory, for DPDK
	// devices whose request names no device-info file.
	DevInfoRoot string
	// DeviceTimeout bounds every wait for a DPDK device: for it to appear
	// on Attach, for each step of a bind or rebind, and for its netdev to
	// come back on Detach.
	DeviceTimeout time.Duration
	// Kernel says where the VM's NIC is.
	Kernel KernelOptions
	// OnSetAside, when set, is told of every checkpoint set aside (a
	// corrupt record, one of a newer schema, one whose device is no
	// longer as it says): the daemon logs and counts them.
	OnSetAside func(checkpoint.SetAsideReport)
}

// Set is a node's drivers, one per driver name, sharing one checkpoint
// directory: the one place a driver name or a checkpoint kind is mapped to
// the code that plugs it.
type Set struct {
	store    *checkpoint.Store
	byDriver map[string]Driver
	byKind   map[string]Driver
	claimed  *Claimed
	// holds are the attachments of the ADDs under way (Hold).
	holds holds
}

// New builds the drivers of a node.
func New(opts Options) (*Set, error) {
	var copts []checkpoint.Option
	if opts.OnSetAside != nil {
		copts = append(copts, checkpoint.WithReport(opts.OnSetAside))
	}
	store, err := checkpoint.New(opts.CheckpointDir, copts...)
	if err != nil {
		return nil, err
	}
	sys := pci.New(opts.SysfsRoot, pci.WithBindTimeout(opts.DeviceTimeout))
	vlan, macvlan := NewVLAN(store, opts.Kernel), NewMACVLAN(store, opts.Kernel)
	dpdk := NewDPDK(sys, store, DPDKOptions{DeviceTimeout: opts.DeviceTimeout, DevInfoRoot: opts.DevInfoRoot, Node: opts.Kernel})
	var claims Checkpoints
	if opts.ClaimCheckpointDir != "" {
		if claims, err = checkpoint.New(opts.ClaimCheckpointDir, copts...); err != nil {
			return nil, err
		}
	}
	claimed := NewClaimed(dpdk, claims)
	return &Set{
		store: store,
		byDriver: map[string]Driver{
			netconf.DriverNestedVLAN: vlan, netconf.DriverNestedMACVLAN: macvlan, netconf.DriverNestedDPDK: dpdk,
		},
		byKind: map[string]Driver{checkpoint.KindVLAN: vlan, checkpoint.KindMACVLAN: macvlan, checkpoint.KindDPDK: dpdk,
			checkpoint.KindClaimed: claimed},
		claimed: claimed,
	}, nil
}

// Claimed returns the driver of interfaces that are devices DRA claims
// prepared.
func (s *Set) Claimed() Driver { return s.claimed }

// ForDriver returns the driver of a driver name (nested-vlan, ...).
func (s *Set) ForDriver(name string) (Driver, error) {
	if d, ok := s.byDriver[name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("unknown driver %q", name)
}

// ForRecord returns the driver that wrote a checkpoint record.
func (s *Set) ForRecord(r checkpoint.Record) (Driver, error) {
	if d, ok := s.byKind[r.Kind]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("checkpoint %s has unknown kind %q", r.Key(), r.Kind)
}

// Records lists every readable checkpoint record (see checkpoint.Store.List).
func (s *Set) Records() ([]checkpoint.Record, error) { return s.store.List() }
