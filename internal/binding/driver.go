package binding

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// Driver plugs one kind of pod interface (nested-vlan, nested-macvlan,
// nested-dpdk). Each writes its own checkpoint before it changes anything,
// so that Detach needs nothing but the container ID and interface name,
// after a daemon restart too.
type Driver interface {
	// Attach plugs the interface. A retried Attach keeps what is already
	// right; on error it leaves nothing behind but, where something may be
	// left, the checkpoint for Detach.
	Attach(ctx context.Context, req Request) (Result, error)
	// Check verifies, for CNI CHECK, that the interface is still as Attach
	// left it.
	Check(ctx context.Context, req Request) error
	// Detach undoes Attach from the checkpoint alone and removes the
	// checkpoint. Nothing to do is a success.
	Detach(ctx context.Context, containerID, ifName string) error
}

var (
	_ Driver = (*VLAN)(nil)
	_ Driver = (*MACVLAN)(nil)
	_ Driver = (*DPDK)(nil)
)

// Request asks a driver for one pod interface: what the cloud gave it and
// where it goes. Each driver reads the fields that concern it.
type Request struct {
	// ContainerID and IfName identify the attachment (and its checkpoint).
	ContainerID string
	IfName      string
	// Netns is the pod's network namespace path (CNI_NETNS).
	Netns string
	// Network names the network for the device-info file of a DPDK device
	// ("namespace/name" of its NetworkAttachmentDefinition).
	Network string
	// CNINetwork is the name of the CNI network configuration of the call
	// (recorded: a CNI GC undoes only its own network's attachments).
	CNINetwork string
	// PodUID is the pod the interface is for (recorded: the daemon's
	// start-up reconcile undoes attachments of pods that are gone).
	PodUID string
	// PortID is the Neutron port behind the interface (recorded).
	PortID string
	// ClaimUID, for a claimed interface (Claimed), is the ResourceClaim
	// whose prepared device the interface is.
	ClaimUID string
	// MAC is the Neutron port's MAC: the kernel interface's address, or how
	// a hot-plugged DPDK device is found.
	MAC net.HardwareAddr
	// MTU of the interface; 0 keeps the parent's.
	MTU int
	// IPs are the addresses with their prefix length (10.0.0.5/24).
	IPs []*net.IPNet
	// Gateway is the next hop of the default route.
	Gateway net.IP
	// Routes are installed as given, except that default routes (0.0.0.0/0,
	// ::/0) are installed only with DefaultRoute: an extra network must not
	// take the pod's default route unless asked to.
	Routes []Route
	// DefaultRoute installs a default route via Gateway on this interface.
	DefaultRoute bool
	// VLANID is the 802.1Q tag (nested-vlan only, 1..4094).
	VLANID int
	// DPDKDriver is uio_pci_generic or vfio-pci; "" for the default
	// (nested-dpdk only).
	DPDKDriver string
	// DeviceInfoFile, when set, is where the NPWG device-info file of a DPDK
	// device goes (the runtime's CNIDeviceInfoFile); else it goes under the
	// driver's device-info root, if it has one.
	DeviceInfoFile string
	// CNIArgs are the pod's cni-args for this network (a JSON object, from
	// the networks annotation), or nil. Reserved: no driver acts on any key
	// yet.
	CNIArgs json.RawMessage
}

// Route is one route through the interface.
type Route struct {
	Dst *net.IPNet
	GW  net.IP // nil: on-link
}

// Result says what the pod got beyond what it asked for: for a DPDK device,
// which device and drivers, and how long the device took to appear.
type Result struct {
	PCIAddress     string
	OriginalDriver string
	BoundDriver    string
	// DeviceWait is how long Attach waited for the device to appear.
	DeviceWait time.Duration
}

// ErrDeviceNotFound means the device of a nested-dpdk interface did not
// appear in the VM within the device timeout: it may still come (try
// again later).
var ErrDeviceNotFound = errors.New("device not found in this VM")

// Checkpoints is where drivers keep their per-attachment records.
type Checkpoints interface {
	Get(containerID, ifName string) (checkpoint.Record, error)
	Put(r checkpoint.Record) error
	Delete(containerID, ifName string) error
	List() ([]checkpoint.Record, error)
	// SetAside moves a record that must not be acted on out of the way,
	// for an operator, and reports it.
	SetAside(r checkpoint.Record, reason error) error
}

var _ Checkpoints = (*checkpoint.Store)(nil)
