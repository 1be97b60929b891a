package cloudsim

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
)

func neutronRoutes(c *Cloud) []route {
	const n = "/network/v2.0"
	h := neutronHandler
	return []route{
		{"POST " + n + "/networks", "neutron.networks.create", h(c.createNetwork)},
		{"GET " + n + "/networks", "neutron.networks.list", h(networksAPI.list(c))},
		{"GET " + n + "/networks/{id}", "neutron.networks.get", h(networksAPI.get(c))},
		{"DELETE " + n + "/networks/{id}", "neutron.networks.delete", h(networksAPI.remove(c, c.dropNetwork))},
		{"POST " + n + "/subnets", "neutron.subnets.create", h(c.createSubnet)},
		{"GET " + n + "/subnets/{id}", "neutron.subnets.get", h(subnetsAPI.get(c))},
		{"DELETE " + n + "/subnets/{id}", "neutron.subnets.delete", h(subnetsAPI.remove(c, c.dropSubnet))},
		{"POST " + n + "/security-groups", "neutron.security_groups.create", h(c.createSecurityGroup)},
		{"GET " + n + "/security-groups/{id}", "neutron.security_groups.get", h(sgsAPI.get(c))},
		{"DELETE " + n + "/security-groups/{id}", "neutron.security_groups.delete", h(sgsAPI.remove(c, c.dropSecurityGroup))},
		{"POST " + n + "/ports", "neutron.ports.create", h(c.createPorts)},
		{"GET " + n + "/ports", "neutron.ports.list", h(portsAPI.list(c))},
		{"GET " + n + "/ports/{id}", "neutron.ports.get", h(portsAPI.get(c))},
		{"PUT " + n + "/ports/{id}", "neutron.ports.update", h(c.updatePort)},
		{"DELETE " + n + "/ports/{id}", "neutron.ports.delete", h(portsAPI.remove(c, c.dropPort))},
		{"GET " + n + "/ports/{id}/tags", "neutron.ports.tags.list", h(portsAPI.show(c, "tags", func(p *Port) any { return nonNil(p.Tags) }))},
		{"PUT " + n + "/ports/{id}/tags", "neutron.ports.tags.replace", h(c.replaceTags)},
		{"PUT " + n + "/ports/{id}/tags/{tag}", "neutron.ports.tags.add", h(c.addTag)},
		{"DELETE " + n + "/ports/{id}/tags/{tag}", "neutron.ports.tags.delete", h(c.deleteTag)},
		{"GET " + n + "/ports/{id}/tags/{tag}", "neutron.ports.tags.check", h(c.checkTag)},
		{"DELETE " + n + "/ports/{id}/tags", "neutron.ports.tags.delete_all", h(c.deleteTags)},
		{"POST " + n + "/trunks", "neutron.trunks.create", h(c.createTrunk)},
		{"GET " + n + "/trunks", "neutron.trunks.list", h(trunksAPI.list(c))},
		{"GET " + n + "/trunks/{id}", "neutron.trunks.get", h(trunksAPI.get(c))},
		{"DELETE " + n + "/trunks/{id}", "neutron.trunks.delete", h(trunksAPI.remove(c, c.dropTrunk))},
		{"PUT " + n + "/trunks/{id}/add_subports", "neutron.trunks.add_subports", h(c.addSubports)},
		{"PUT " + n + "/trunks/{id}/remove_subports", "neutron.trunks.remove_subports", h(c.removeSubports)},
		{"GET " + n + "/trunks/{id}/get_subports", "neutron.trunks.get_subports", h(trunksAPI.show(c, "sub_ports", func(t *Trunk) any { return nonNil(t.Subports) }))},
	}
}

// createBody returns the object under key (e.g. "network") of a create
// request's body and the project it is for.
func (c *Cloud) createBody(r *http.Request, key string) (map[string]json.RawMessage, string, *apiError) {
	obj, e := resourceBody(r, key)
	if e != nil {
		return nil, "", e
	}
	project, e := c.projectFor(r, obj)
	return obj, project, e
}

// projectFor returns the project a create request is for: the token's, or
// under NoAuth the body's project_id (tenant_id), which is then required.
func (c *Cloud) projectFor(r *http.Request, obj map[string]json.RawMessage) (string, *apiError) {
	var p string
	if e := member(obj, "project_id", &p, false); e != nil {
		return "", e
	}
	if p == "" {
		if e := member(obj, "tenant_id", &p, false); e != nil {
			return "", e
		}
	}
	if tp := projectOf(r); tp != "" {
		if p == "" {
			p = tp
		}
		return p, nil
	}
	if p == "" {
		return "", badRequest("'project_id' must be specified in the request body when there is no authentication")
	}
	return p, nil
}

var networksAPI = resource[Network]{one: "network", many: "networks",
	records:  func(st *store) map[string]*Network { return st.networks },
	notFound: func(id string) *apiError { return errf(404, "NetworkNotFound", "Network %s could not be found.", id) },
	render:   func(_ *Cloud, n *Network) map[string]any { return networkJSON(n) },
	matches: func(q url.Values, n *Network) bool {
		return fieldsMatch(q, map[string]string{"name": n.Name, "id": n.ID})
	},
}

var subnetsAPI = resource[Subnet]{one: "subnet",
	records:  func(st *store) map[string]*Subnet { return st.subnets },
	notFound: func(id string) *apiError { return errf(404, "SubnetNotFound", "Subnet %s could not be found.", id) },
	render:   func(_ *Cloud, s *Subnet) map[string]any { return subnetJSON(s) },
}

var sgsAPI = resource[SecurityGroup]{one: "security_group",
	records: func(st *store) map[string]*SecurityGroup { return st.sgs },
	notFound: func(id string) *apiError {
		return errf(404, "SecurityGroupNotFound", "Security group %s does not exist", id)
	},
	render: func(_ *Cloud, g *SecurityGroup) map[string]any { return sgJSON(g) },
}

func networkJSON(n *Network) map[string]any {
	return map[string]any{
		"id": n.ID, "name": n.Name, "status": "ACTIVE", "admin_state_up": true, "mtu": n.MTU,
		"subnets": nonNil(n.Subnets), "project_id": n.ProjectID, "tenant_id": n.ProjectID,
		"shared": false, "router:external": false, "port_security_enabled": true,
		"description": "", "tags": nonNil(n.Tags), "revision_number": n.RevisionNumber,
		// No DHCP agent hosts it: no availability zone yet.
		"availability_zone_hints": []string{}, "availability_zones": []string{},
		"created_at": timeString(n.CreatedAt), "updated_at": timeString(n.UpdatedAt),
		"ipv4_address_scope": nil, "ipv6_address_scope": nil,
		"provider:network_type": "vxlan", "provider:physical_network": nil, "provider:segmentation_id": n.segmentation(),
	}
}

// segmentation is the network's VXLAN ID, derived from its ID (Neutron
// allocates one per network from its range).
func (n *Network) segmentation() int {
	h := 0
	for _, r := range n.ID {
		h = (h*31 + int(r)) % 16000000
	}
	return h + 1
}

func subnetJSON(s *Subnet) map[string]any {
	v := 4
	if s.CIDR.Addr().Is6() {
		v = 6
	}
	var gw any
	if s.GatewayIP.IsValid() {
		gw = s.GatewayIP.String()
	}
	return map[string]any{
		"id": s.ID, "name": s.Name, "network_id": s.NetworkID, "project_id": s.ProjectID,
		"tenant_id": s.ProjectID, "cidr": s.CIDR.String(), "ip_version": v, "gateway_ip": gw,
		"allocation_pools": []map[string]string{{"start": s.PoolStart.String(), "end": s.PoolEnd.String()}},
		"enable_dhcp":      s.EnableDHCP, "dns_nameservers": []string{}, "host_routes": []any{},
		"description": "", "tags": nonNil(s.Tags), "revision_number": s.RevisionNumber,
		"ipv6_address_mode": nil, "ipv6_ra_mode": nil, "subnetpool_id": nil, "service_types": []string{},
		"created_at": timeString(s.CreatedAt), "updated_at": timeString(s.UpdatedAt),
	}
}

func sgJSON(g *SecurityGroup) map[string]any {
	return map[string]any{
		"id": g.ID, "name": g.Name, "description": g.Description, "project_id": g.ProjectID,
		"tenant_id": g.ProjectID, "security_group_rules": []any{}, "tags": []string{}, "stateful": true,
		"shared": false, "revision_number": g.RevisionNumber,
		"created_at": timeString(g.CreatedAt), "updated_at": timeString(g.UpdatedAt),
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (c *Cloud) createNetwork(w http.ResponseWriter, r *http.Request) *apiError {
	obj, project, e := c.createBody(r, "network")
	if e != nil {
		return e
	}
	n := &Network{ID: newID(), ProjectID: project, MTU: 1450, RevisionNumber: 1}
	if e := members(obj, []field{{"name", &n.Name, false}, {"mtu", &n.MTU, false}}); e != nil {
		return e
	}
	n.CreatedAt, n.UpdatedAt = nowUTC(), nowUTC()
	networksAPI.created(c, w, n.ID, n)
	return nil
}

// dropNetwork removes n unless it is in use. Callers hold c.st.mu.
func (c *Cloud) dropNetwork(n *Network) *apiError {
	id := n.ID
	for _, p := range c.st.ports {
		if p.NetworkID == id {
			return errf(409, "NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
	}
	for _, s := range n.Subnets {
		delete(c.st.subnets, s)
	}
	delete(c.st.networks, id)
	return nil
}

func (c *Cloud) createSubnet(w http.ResponseWriter, r *http.Request) *apiError {
	obj, project, e := c.createBody(r, "subnet")
	if e != nil {
		return e
	}
	var netID, cidr, name string
	var gateway *string
	dhcp := true
	var pools []struct{ Start, End string }
	if e := members(obj, []field{
		{"network_id", &netID, true}, {"cidr", &cidr, true}, {"name", &name, false},
		{"gateway_ip", &gateway, false}, {"enable_dhcp", &dhcp, false}, {"allocation_pools", &pools, false},
	}); e != nil {
		return e
	}
	var gw *string
	if _, present := obj["gateway_ip"]; present {
		gw = gateway
		if gw == nil {
			empty := ""
			gw = &empty
		}
	}
	sub, e := makeSubnet(netID, name, cidr, gw, pools)
	if e != nil {
		return e
	}
	sub.ProjectID, sub.EnableDHCP = project, dhcp
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	n, e := networksAPI.find(c.st, netID)
	if e != nil {
		return e
	}
	c.st.subnets[sub.ID] = sub
	n.Subnets = append(n.Subnets, sub.ID)
	touch(&n.RevisionNumber, &n.UpdatedAt)
	writeJSON(w, http.StatusCreated, map[string]any{"subnet": subnetJSON(sub)})
	return nil
}

// makeSubnet validates and builds a subnet. gateway nil means the first
// host address; "" means no gateway.
func makeSubnet(netID, name, cidr string, gateway *string, pools []struct{ Start, End string }) (*Subnet, *apiError) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || pfx.Masked() != pfx || pfx.Bits() > pfx.Addr().BitLen()-2 {
		return nil, badRequest("Invalid input for cidr. Reason: '%s' is not a valid IP subnet.", cidr)
	}
	now := nowUTC()
	sub := &Subnet{ID: newID(), Name: name, NetworkID: netID, CIDR: pfx, RevisionNumber: 1,
		CreatedAt: now, UpdatedAt: now, used: map[netip.Addr]string{}}
	first := pfx.Addr().Next()
	last := lastAddr(pfx)
	if pfx.Addr().Is4() {
		last = last.Prev() // broadcast
	}
	switch {
	case gateway == nil:
		sub.GatewayIP = first
	case *gateway != "":
		gw, err := netip.ParseAddr(*gateway)
		if err != nil || !pfx.Contains(gw) {
			return nil, badRequest("Invalid input for gateway_ip. Reason: '%s' is not in subnet %s.", *gateway, cidr)
		}
		sub.GatewayIP = gw
	}
	sub.PoolStart, sub.PoolEnd = first, last
	if sub.GatewayIP == first {
		sub.PoolStart = first.Next()
	}
	if len(pools) > 0 {
		s, err1 := netip.ParseAddr(pools[0].Start)
		e, err2 := netip.ParseAddr(pools[0].End)
		if err1 != nil || err2 != nil || !pfx.Contains(s) || !pfx.Contains(e) || e.Less(s) {
			return nil, badRequest("Invalid input for allocation_pools: %v", pools)
		}
		sub.PoolStart, sub.PoolEnd = s, e
	}
	return sub, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// dropSubnet removes s unless it is in use. Callers hold c.st.mu.
func (c *Cloud) dropSubnet(s *Subnet) *apiError {
	id := s.ID
	if len(s.used) > 0 {
		return errf(409, "SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
	}
	delete(c.st.subnets, id)
	if n, ok := c.st.networks[s.NetworkID]; ok {
		for i, sid := range n.Subnets {
			if sid == id {
				n.Subnets = append(n.Subnets[:i], n.Subnets[i+1:]...)
				break
			}
		}
	}
	return nil
}

func (c *Cloud) createSecurityGroup(w http.ResponseWriter, r *http.Request) *apiError {
	obj, project, e := c.createBody(r, "security_group")
	if e != nil {
		return e
	}
	now := nowUTC()
	g := &SecurityGroup{ID: newID(), ProjectID: project, RevisionNumber: 1, CreatedAt: now, UpdatedAt: now}
	if e := members(obj, []field{{"name", &g.Name, false}, {"description", &g.Description, false}}); e != nil {
		return e
	}
	sgsAPI.created(c, w, g.ID, g)
	return nil
}

// dropSecurityGroup removes g unless it is in use. Callers hold c.st.mu.
func (c *Cloud) dropSecurityGroup(g *SecurityGroup) *apiError {
	id := g.ID
	for _, p := range c.st.ports {
		for _, g := range p.SecurityGroups {
			if g == id {
				return errf(409, "SecurityGroupInUse", "Security Group %s in use.", id)
			}
		}
	}
	delete(c.st.sgs, id)
	return nil
}
