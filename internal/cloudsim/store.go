package cloudsim

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// FixedIP is one address of a port on a subnet.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// AddressPair is one allowed address pair of a port.
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address,omitempty"`
}

// Port is the simulated cloud's record of a Neutron port. Hooks receive
// copies of it.
type Port struct {
	ID                  string
	Name                string
	Description         string
	NetworkID           string
	ProjectID           string
	MACAddress          string
	Status              string
	AdminStateUp        bool
	DeviceID            string
	DeviceOwner         string
	HostID              string
	VNICType            string
	FixedIPs            []FixedIP
	SecurityGroups      []string
	AllowedAddressPairs []AddressPair
	// NoPortSecurity is port_security_enabled false (asked off); the zero
	// value is Neutron's default, on.
	NoPortSecurity bool
	Tags           []string
	RevisionNumber int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (p *Port) clone() Port {
	c := *p
	c.FixedIPs = append([]FixedIP(nil), p.FixedIPs...)
	c.SecurityGroups = append([]string(nil), p.SecurityGroups...)
	c.AllowedAddressPairs = append([]AddressPair(nil), p.AllowedAddressPairs...)
	c.Tags = append([]string(nil), p.Tags...)
	return c
}

// Network is a simulated Neutron network.
type Network struct {
	ID             string
	Name           string
	ProjectID      string
	MTU            int
	Subnets        []string
	Tags           []string
	RevisionNumber int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Subnet is a simulated Neutron IPv4 or IPv6 subnet.
type Subnet struct {
	ID             string
	Name           string
	NetworkID      string
	ProjectID      string
	CIDR           netip.Prefix
	GatewayIP      netip.Addr
	PoolStart      netip.Addr
	PoolEnd        netip.Addr
	EnableDHCP     bool
	Tags           []string
	RevisionNumber int
	CreatedAt      time.Time
	UpdatedAt      time.Time

	used map[netip.Addr]string // address -> port ID
	next netip.Addr            // allocation cursor
}

// SecurityGroup is a simulated Neutron security group (without rules).
type SecurityGroup struct {
	ID             string
	Name           string
	Description    string
	ProjectID      string
	RevisionNumber int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Subport is one VLAN subport of a trunk.
type Subport struct {
	PortID           string `json:"port_id"`
	SegmentationType string `json:"segmentation_type"`
	SegmentationID   int    `json:"segmentation_id"`
}

// Trunk is a simulated Neutron trunk.
type Trunk struct {
	ID             string
	Name           string
	Description    string
	PortID         string
	ProjectID      string
	AdminStateUp   bool
	Subports       []Subport
	Tags           []string
	RevisionNumber int
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Server is a simulated Nova server (a VM).
type Server struct {
	ID        string
	Name      string
	ProjectID string
	// Host is the hypervisor host name, reported as OS-EXT-SRV-ATTR:host and
	// set as binding:host_id on the ports attached to the server.
	Host      string
	Status    string
	CreatedAt time.Time
}

// store holds the state of the simulated cloud. All fields are guarded by mu.
type store struct {
	mu       sync.Mutex
	networks map[string]*Network
	subnets  map[string]*Subnet
	ports    map[string]*Port
	sgs      map[string]*SecurityGroup
	trunks   map[string]*Trunk
	servers  map[string]*Server
	// macs holds the MACs in use, per network: Neutron refuses a MAC
	// only on the network that already has it.
	macs   map[macKey]bool
	tokens map[string]string // token -> project ID
	// order of creation, so that lists are stable.
	portOrder []string
}

func newStore() *store {
	return &store{
		networks: map[string]*Network{},
		subnets:  map[string]*Subnet{},
		ports:    map[string]*Port{},
		sgs:      map[string]*SecurityGroup{},
		trunks:   map[string]*Trunk{},
		servers:  map[string]*Server{},
		macs:     map[macKey]bool{},
		tokens:   map[string]string{},
	}
}

// newID returns a random UUID (version 4), as Neutron and Nova use.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// macKey is a MAC address on one network.
type macKey struct{ network, mac string }

// newMAC returns a MAC address with Neutron's default base fa:16:3e that is
// unused on network, and takes it. Callers hold s.mu.
func (s *store) newMAC(network string) string {
	for {
		var b [3]byte
		_, _ = rand.Read(b[:])
		mac := fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
		if s.takeMAC(network, mac) {
			return mac
		}
	}
}

// takeMAC marks mac in use on network, unless it already is (then it
// returns false). Callers hold s.mu.
func (s *store) takeMAC(network, mac string) bool {
	k := macKey{network, mac}
	if s.macs[k] {
		return false
	}
	s.macs[k] = true
	return true
}

// allocate takes the next free address of sub's allocation pool for portID.
// Callers hold s.mu.
func (sub *Subnet) allocate(portID string) (netip.Addr, bool) {
	a := sub.next
	if !a.IsValid() || a.Compare(sub.PoolStart) < 0 || a.Compare(sub.PoolEnd) > 0 {
		a = sub.PoolStart
	}
	start := a
	for {
		if _, taken := sub.used[a]; !taken && a != sub.GatewayIP {
			sub.used[a] = portID
			sub.next = a.Next()
			return a, true
		}
		a = a.Next()
		if !a.IsValid() || a.Compare(sub.PoolEnd) > 0 {
			a = sub.PoolStart
		}
		if a == start {
			return netip.Addr{}, false
		}
	}
}

// inPool reports whether a lies in sub's CIDR (a fixed IP may be asked for
// outside the allocation pool, as in Neutron).
func (sub *Subnet) contains(a netip.Addr) bool {
	return sub.CIDR.Contains(a) && a != sub.CIDR.Masked().Addr()
}

// releasePort frees the addresses and MAC held by p. Callers hold s.mu.
func (s *store) releasePort(p *Port) {
	for _, ip := range p.FixedIPs {
		if sub, ok := s.subnets[ip.SubnetID]; ok {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
				delete(sub.used, a)
			}
		}
	}
	delete(s.macs, macKey{p.NetworkID, p.MACAddress})
	delete(s.ports, p.ID)
	for i, id := range s.portOrder {
		if id == p.ID {
			s.portOrder = append(s.portOrder[:i], s.portOrder[i+1:]...)
			break
		}
	}
}

// trunkOfParent returns the trunk whose parent is portID. Callers hold s.mu.
func (s *store) trunkOfParent(portID string) *Trunk {
	for _, t := range s.trunks {
		if t.PortID == portID {
			return t
		}
	}
	return nil
}

// trunkOfSubport returns the trunk that has portID as a subport. Callers
// hold s.mu.
func (s *store) trunkOfSubport(portID string) *Trunk {
	for _, t := range s.trunks {
		for _, sp := range t.Subports {
			if sp.PortID == portID {
				return t
			}
		}
	}
	return nil
}

// defaultSecurityGroup returns the ID of project's "default" security
// group, creating it as Neutron does on first use. Callers hold s.mu.
func (s *store) defaultSecurityGroup(project string) string {
	for _, sg := range s.sgs {
		if sg.ProjectID == project && sg.Name == "default" {
			return sg.ID
		}
	}
	now := nowUTC()
	sg := &SecurityGroup{ID: newID(), Name: "default", Description: "Default security group",
		ProjectID: project, RevisionNumber: 1, CreatedAt: now, UpdatedAt: now}
	s.sgs[sg.ID] = sg
	return sg.ID
}

// nowUTC is the time stamp of records, to the second as Neutron shows it.
func nowUTC() time.Time { return time.Now().UTC().Truncate(time.Second) }

// touch bumps a record's revision and update time.
func touch(rev *int, updated *time.Time) {
	*rev++
	*updated = nowUTC()
}

// setBinding binds p to host ("" unbinds): DOWN, then ACTIVE at once or
// after the cloud's BindDelay if p is still bound to host then. Callers
// hold c.st.mu.
func (c *Cloud) setBinding(p *Port, host string) { c.bind(p, host, !c.noAgent) }

// bind sets p's host; when agent, the port turns ACTIVE (after BindDelay) as
// an L2 agent wiring it makes it.
func (c *Cloud) bind(p *Port, host string, agent bool) {
	p.HostID, p.Status = host, "DOWN"
	if host == "" || !agent {
		return
	}
	if c.bindDelay <= 0 {
		p.Status = "ACTIVE"
		return
	}
	id := p.ID
	time.AfterFunc(c.bindDelay, func() {
		c.st.mu.Lock()
		defer c.st.mu.Unlock()
		q, ok := c.st.ports[id]
		// A subport taken off its trunk meanwhile keeps its host (Neutron
		// leaves it) but is unwired: it stays DOWN.
		unwired := ok && q.DeviceOwner == "trunk:subport" && c.st.trunkOfSubport(id) == nil
		if ok && q.HostID == host && q.Status == "DOWN" && !unwired {
			q.Status = "ACTIVE"
			touch(&q.RevisionNumber, &q.UpdatedAt)
		}
	})
}
