package cloudsim

import (
	"fmt"
	"net/netip"
)

// SeedNetwork creates a network with one subnet of cidr (gateway on the
// first address) in the cloud's project, as an operator would beforehand.
func (c *Cloud) SeedNetwork(name, cidr string) (Network, Subnet, error) {
	return c.SeedNetworkSpec(NetworkSpec{Name: name, CIDR: cidr})
}

// NetworkSpec describes a network with one subnet to seed.
type NetworkSpec struct {
	Name string `json:"name"`
	CIDR string `json:"cidr"`
	// ID and SubnetID are generated when empty.
	ID       string `json:"id,omitempty"`
	SubnetID string `json:"subnetID,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
}

// SeedNetworkSpec creates the network and subnet spec describes.
func (c *Cloud) SeedNetworkSpec(spec NetworkSpec) (Network, Subnet, error) {
	name := spec.Name
	sub, e := makeSubnet("", name+"-subnet", spec.CIDR, nil, nil)
	if e != nil {
		return Network{}, Subnet{}, fmt.Errorf("seed network %s: %w", name, e)
	}
	if spec.SubnetID != "" {
		sub.ID = spec.SubnetID
	}
	if spec.ID == "" {
		spec.ID = newID()
	}
	if spec.MTU == 0 {
		spec.MTU = 1450
	}
	now := nowUTC()
	n := &Network{ID: spec.ID, Name: name, ProjectID: c.creds.ProjectID, MTU: spec.MTU, RevisionNumber: 1,
		CreatedAt: now, UpdatedAt: now, Subnets: []string{sub.ID}}
	sub.NetworkID, sub.ProjectID, sub.EnableDHCP = n.ID, c.creds.ProjectID, true
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if _, ok := c.st.networks[n.ID]; ok {
		return Network{}, Subnet{}, fmt.Errorf("seed network %s: network %s exists", name, n.ID)
	}
	if _, ok := c.st.subnets[sub.ID]; ok {
		return Network{}, Subnet{}, fmt.Errorf("seed network %s: subnet %s exists", name, sub.ID)
	}
	c.st.networks[n.ID] = n
	c.st.subnets[sub.ID] = sub
	return *n, subnetCopy(sub), nil
}

func subnetCopy(s *Subnet) Subnet {
	c := *s
	c.used, c.next = nil, netip.Addr{}
	return c
}

// SeedSecurityGroup creates a security group in the cloud's project.
func (c *Cloud) SeedSecurityGroup(name string) SecurityGroup {
	now := nowUTC()
	g := &SecurityGroup{ID: newID(), Name: name, ProjectID: c.creds.ProjectID, RevisionNumber: 1, CreatedAt: now, UpdatedAt: now}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	c.st.sgs[g.ID] = g
	return *g
}

// ServerSpec describes a simulated VM to seed.
type ServerSpec struct {
	// ID is generated when empty.
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// Host is the hypervisor; "compute-<name>" when empty.
	Host string `json:"host,omitempty"`
	// SubnetID is where the VM's first NIC (its parent port) gets its
	// address.
	SubnetID string `json:"subnetID"`
	// Trunk makes the parent port a trunk parent.
	Trunk bool `json:"trunk,omitempty"`
}

// SeededServer is what SeedServer made.
type SeededServer struct {
	Server     Server
	ParentPort Port
	// TrunkID is empty unless ServerSpec.Trunk.
	TrunkID string
}

// SeedServer creates an ACTIVE server whose parent port on spec.SubnetID
// is bound to it (and is a trunk parent when spec.Trunk), as Nova leaves a
// booted Kubernetes node VM.
func (c *Cloud) SeedServer(spec ServerSpec) (SeededServer, error) {
	if spec.ID == "" {
		spec.ID = newID()
	}
	if spec.Host == "" {
		spec.Host = "compute-" + spec.Name
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	sub, ok := c.st.subnets[spec.SubnetID]
	if !ok {
		return SeededServer{}, fmt.Errorf("seed server %s: subnet %s not found", spec.Name, spec.SubnetID)
	}
	if _, ok := c.st.servers[spec.ID]; ok {
		return SeededServer{}, fmt.Errorf("seed server %s: server %s exists", spec.Name, spec.ID)
	}
	now := nowUTC()
	s := &Server{ID: spec.ID, Name: spec.Name, ProjectID: c.creds.ProjectID, Host: spec.Host, Status: "ACTIVE", CreatedAt: now}
	p := &Port{ID: newID(), Name: spec.Name + "-port", NetworkID: sub.NetworkID, ProjectID: c.creds.ProjectID,
		MACAddress: c.st.newMAC(sub.NetworkID), Status: "ACTIVE", AdminStateUp: true, DeviceID: s.ID, DeviceOwner: "compute:nova",
		HostID: s.Host, VNICType: "normal", RevisionNumber: 1, CreatedAt: now, UpdatedAt: now,
		SecurityGroups: []string{c.st.defaultSecurityGroup(c.creds.ProjectID)}}
	c.st.ports[p.ID] = p
	c.st.portOrder = append(c.st.portOrder, p.ID)
	a, ok := sub.allocate(p.ID)
	if !ok {
		c.st.releasePort(p)
		return SeededServer{}, fmt.Errorf("seed server %s: subnet %s is full", spec.Name, sub.ID)
	}
	p.FixedIPs = []FixedIP{{SubnetID: sub.ID, IPAddress: a.String()}}
	c.st.servers[s.ID] = s
	out := SeededServer{Server: *s, ParentPort: p.clone()}
	if spec.Trunk {
		t := &Trunk{ID: newID(), Name: spec.Name + "-trunk", PortID: p.ID, ProjectID: c.creds.ProjectID,
			AdminStateUp: true, RevisionNumber: 1, CreatedAt: now, UpdatedAt: now}
		c.st.trunks[t.ID] = t
		out.TrunkID = t.ID
	}
	return out, nil
}

// Ports returns a copy of every port, in creation order.
func (c *Cloud) Ports() []Port {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	out := make([]Port, 0, len(c.st.portOrder))
	for _, id := range c.st.portOrder {
		out = append(out, c.st.ports[id].clone())
	}
	return out
}

// Port returns a copy of port id.
func (c *Cloud) Port(id string) (Port, bool) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	p, ok := c.st.ports[id]
	if !ok {
		return Port{}, false
	}
	return p.clone(), true
}

// Subports returns the subports of trunk id.
func (c *Cloud) Subports(id string) ([]Subport, bool) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	t, ok := c.st.trunks[id]
	if !ok {
		return nil, false
	}
	return append([]Subport(nil), t.Subports...), true
}

// DeleteServer removes a server as Nova does when the VM is deleted: the
// ports attached to it are deleted too (Nova deletes the parent ports it
// bound), trunks on them first.
func (c *Cloud) DeleteServer(id string) error {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if _, ok := c.st.servers[id]; !ok {
		return fmt.Errorf("delete server %s: not found", id)
	}
	for _, pid := range append([]string(nil), c.st.portOrder...) {
		p := c.st.ports[pid]
		if p.DeviceID != id {
			continue
		}
		if t := c.st.trunkOfParent(pid); t != nil {
			c.detachSubports(t, t.Subports)
			delete(c.st.trunks, t.ID)
		}
		c.st.releasePort(p)
	}
	delete(c.st.servers, id)
	return nil
}
