package openstack

// FixedIP is an address of a port on a subnet.
type FixedIP struct {
	SubnetID  string `json:"subnet_id,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

// AddressPair is an allowed address pair of a port.
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address,omitempty"`
}

// Subport is a VLAN subport of a trunk.
type Subport struct {
	PortID           string `json:"port_id"`
	SegmentationType string `json:"segmentation_type"`
	SegmentationID   int    `json:"segmentation_id"`
	// MACAddress is filled in trunk_details only.
	MACAddress string `json:"mac_address,omitempty"`
}

// TrunkDetails is set on a port that is a trunk parent.
type TrunkDetails struct {
	TrunkID  string    `json:"trunk_id"`
	Subports []Subport `json:"sub_ports"`
}

// Port is a Neutron port.
type Port struct {
	ID                  string        `json:"id"`
	Name                string        `json:"name"`
	NetworkID           string        `json:"network_id"`
	ProjectID           string        `json:"project_id"`
	MACAddress          string        `json:"mac_address"`
	Status              string        `json:"status"`
	AdminStateUp        bool          `json:"admin_state_up"`
	DeviceID            string        `json:"device_id"`
	DeviceOwner         string        `json:"device_owner"`
	HostID              string        `json:"binding:host_id"`
	VIFType             string        `json:"binding:vif_type"`
	FixedIPs            []FixedIP     `json:"fixed_ips"`
	SecurityGroups      []string      `json:"security_groups"`
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs"`
	// PortSecurityEnabled is nil when the cloud has no port-security
	// extension.
	PortSecurityEnabled *bool         `json:"port_security_enabled,omitempty"`
	Tags                []string      `json:"tags"`
	RevisionNumber      int           `json:"revision_number"`
	TrunkDetails        *TrunkDetails `json:"trunk_details,omitempty"`
}

// Port statuses.
const (
	PortStatusActive = "ACTIVE"
	PortStatusDown   = "DOWN"
)

// PortSpec says what port to create.
type PortSpec struct {
	NetworkID string
	// SubnetID, when set and IPs are not, asks for an address on that
	// subnet.
	SubnetID string
	// IPs, when set, are the addresses asked for, every one: a FixedIP
	// without SubnetID lets Neutron find the network's subnet that holds
	// its address.
	IPs  []FixedIP
	Name string
	// SecurityGroups nil means the project's default group; empty means
	// none.
	SecurityGroups []string
	DeviceOwner    string
	DeviceID       string
	Tags           []string
	MACAddress     string
	// PortSecurityEnabled false creates the port without port security and
	// without security groups (Neutron refuses groups, and allowed address
	// pairs, on such a port; with SecurityGroups nil it gives it none).
	// Nil is the cloud's default.
	PortSecurityEnabled *bool
	// AllowedAddressPairs the port is created with.
	AllowedAddressPairs []AddressPair
}

// PortFilter selects ports in ListPorts. Empty fields do not filter.
type PortFilter struct {
	NetworkID   string
	DeviceID    string
	DeviceOwner string
	// Tags: every tag must be present; TagsAny: at least one.
	Tags    []string
	TagsAny []string
	// FixedIP and SubnetID select by address.
	FixedIP  string
	SubnetID string
	Name     string
	// ProjectID selects the ports of one project: an admin's listing
	// otherwise holds every project's.
	ProjectID string
}

// Network is a Neutron network.
type Network struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	MTU     int      `json:"mtu"`
	Subnets []string `json:"subnets"`
	Status  string   `json:"status"`
}

// Subnet is a Neutron subnet.
type Subnet struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	NetworkID      string   `json:"network_id"`
	CIDR           string   `json:"cidr"`
	GatewayIP      string   `json:"gateway_ip"`
	IPVersion      int      `json:"ip_version"`
	DNSNameservers []string `json:"dns_nameservers"`
	HostRoutes     []struct {
		Destination string `json:"destination"`
		NextHop     string `json:"nexthop"`
	} `json:"host_routes"`
}

// Trunk is a Neutron trunk.
type Trunk struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	PortID         string    `json:"port_id"`
	Status         string    `json:"status"`
	Subports       []Subport `json:"sub_ports"`
	RevisionNumber int       `json:"revision_number"`
}

// Server is a Nova server.
type Server struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Host is OS-EXT-SRV-ATTR:host (empty without the admin policy).
	Host string `json:"OS-EXT-SRV-ATTR:host"`
}

// Interface is a Nova interface attachment.
type Interface struct {
	PortID    string    `json:"port_id"`
	NetworkID string    `json:"net_id"`
	MAC       string    `json:"mac_addr"`
	PortState string    `json:"port_state"`
	FixedIPs  []FixedIP `json:"fixed_ips"`
}
