package openstack

import "context"

// PortCreator creates ports (one, or many in one bulk request).
type PortCreator interface {
	CreatePort(ctx context.Context, spec PortSpec) (Port, error)
	CreatePorts(ctx context.Context, specs []PortSpec) ([]Port, error)
}

// PortReader reads ports: one by ID, or those matching tags, a device or an
// address (the lookup that makes creation idempotent).
type PortReader interface {
	GetPort(ctx context.Context, id string) (Port, error)
	ListPorts(ctx context.Context, f PortFilter) ([]Port, error)
}

// Projecter tells which project the client acts in.
type Projecter interface {
	// ProjectID is the project of the client's token (or of its noauth
	// configuration); "" when unscoped.
	ProjectID() string
}

// PortDeleter deletes ports; deleting a port that is gone succeeds.
type PortDeleter interface {
	DeletePort(ctx context.Context, id string) error
}

// PortTagger replaces a port's tags in one request (a pooled port taken by
// a pod, or given back).
type PortTagger interface {
	ReplacePortTags(ctx context.Context, id string, tags []string) ([]string, error)
}

// SecurityGroupUpdater sets a port's security groups.
type SecurityGroupUpdater interface {
	UpdatePortSecurityGroups(ctx context.Context, id string, groups []string) (Port, error)
}

// AddressPairUpdater changes a port's allowed address pairs with the
// revision check (nested-macvlan).
type AddressPairUpdater interface {
	UpdateAllowedAddressPairs(ctx context.Context, id string, pairs []AddressPair, revision int) (Port, error)
}

// NetworkReader reads networks and subnets (MTU, CIDR, gateway).
type NetworkReader interface {
	GetNetwork(ctx context.Context, id string) (Network, error)
	GetSubnet(ctx context.Context, id string) (Subnet, error)
}

// TrunkClient manages the subports of a node's trunk (nested-vlan).
type TrunkClient interface {
	GetTrunk(ctx context.Context, id string) (Trunk, error)
	AddSubports(ctx context.Context, id string, subs []Subport) (Trunk, error)
	RemoveSubports(ctx context.Context, id string, portIDs []string) (Trunk, error)
	ListSubports(ctx context.Context, id string) ([]Subport, error)
}

// ServerReader reads Nova servers (the node VMs).
type ServerReader interface {
	GetServer(ctx context.Context, id string) (Server, error)
}

// InterfaceAttacher hot-attaches and detaches ports to a VM through Nova
// (nested-dpdk).
type InterfaceAttacher interface {
	AttachInterface(ctx context.Context, serverID, portID string) (Interface, error)
	ListInterfaces(ctx context.Context, serverID string) ([]Interface, error)
	GetInterface(ctx context.Context, serverID, portID string) (Interface, error)
	DetachInterface(ctx context.Context, serverID, portID string) error
}

var (
	_ PortCreator          = (*Client)(nil)
	_ PortReader           = (*Client)(nil)
	_ PortDeleter          = (*Client)(nil)
	_ PortTagger           = (*Client)(nil)
	_ SecurityGroupUpdater = (*Client)(nil)
	_ AddressPairUpdater   = (*Client)(nil)
	_ NetworkReader        = (*Client)(nil)
	_ TrunkClient          = (*Client)(nil)
	_ ServerReader         = (*Client)(nil)
	_ InterfaceAttacher    = (*Client)(nil)
)
