package cloudsim

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

var portsAPI = resource[Port]{one: "port", many: "ports",
	records:  func(st *store) map[string]*Port { return st.ports },
	order:    func(st *store) []string { return st.portOrder },
	notFound: portNotFound,
	render:   (*Cloud).portJSON,
	matches:  portMatches,
}

// portJSON renders p as Neutron does. Callers hold c.st.mu.
func (c *Cloud) portJSON(p *Port) map[string]any {
	vif := "unbound"
	if p.HostID != "" {
		vif = "ovs"
	}
	m := map[string]any{
		"id": p.ID, "name": p.Name, "description": p.Description, "network_id": p.NetworkID,
		"project_id": p.ProjectID, "tenant_id": p.ProjectID, "mac_address": p.MACAddress,
		"admin_state_up": p.AdminStateUp, "status": p.Status, "device_id": p.DeviceID,
		"device_owner": p.DeviceOwner, "fixed_ips": nonNil(p.FixedIPs),
		"security_groups": nonNil(p.SecurityGroups), "allowed_address_pairs": nonNil(p.AllowedAddressPairs),
		"tags": nonNil(p.Tags), "revision_number": p.RevisionNumber,
		"created_at": timeString(p.CreatedAt), "updated_at": timeString(p.UpdatedAt),
		"binding:host_id": p.HostID, "binding:vif_type": vif, "binding:vnic_type": p.VNICType,
		"binding:profile": map[string]any{}, "binding:vif_details": map[string]any{},
		"port_security_enabled": !p.NoPortSecurity, "extra_dhcp_opts": []any{},
	}
	if t := c.st.trunkOfParent(p.ID); t != nil {
		subs := []map[string]any{}
		for _, sp := range t.Subports {
			mac := ""
			if sp2, ok := c.st.ports[sp.PortID]; ok {
				mac = sp2.MACAddress
			}
			subs = append(subs, map[string]any{"segmentation_id": sp.SegmentationID,
				"segmentation_type": sp.SegmentationType, "port_id": sp.PortID, "mac_address": mac})
		}
		m["trunk_details"] = map[string]any{"trunk_id": t.ID, "sub_ports": subs}
	}
	return m
}

// portCreateKeys are the attributes a port create request may carry.
var portCreateKeys = map[string]bool{
	"network_id": true, "name": true, "description": true, "admin_state_up": true, "mac_address": true,
	"fixed_ips": true, "device_id": true, "device_owner": true, "project_id": true, "tenant_id": true,
	"security_groups": true, "allowed_address_pairs": true, "binding:host_id": true,
	"binding:vnic_type": true, "binding:profile": true, "tags": true, "port_security_enabled": true,
	"propagate_uplink_status": true, "dns_name": true, "extra_dhcp_opts": true,
}

func unrecognized(obj map[string]json.RawMessage, allowed map[string]bool) *apiError {
	var bad []string
	for k := range obj {
		if !allowed[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return badRequest("Unrecognized attribute(s) '%s'", strings.Join(bad, ", "))
	}
	return nil
}

// createPorts answers POST /v2.0/ports, one port ({"port": ...}) or a
// bulk ({"ports": [...]}), which is all or nothing.
func (c *Cloud) createPorts(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := readBody(r)
	if e != nil {
		return e
	}
	var objs []map[string]json.RawMessage
	_, bulk := body["ports"]
	if bulk {
		if e := member(body, "ports", &objs, true); e != nil {
			return e
		}
	} else {
		var one map[string]json.RawMessage
		if e := member(body, "port", &one, true); e != nil || one == nil {
			return badRequest("Resource body required")
		}
		objs = append(objs, one)
	}
	projects := make([]string, len(objs))
	for i, obj := range objs {
		if e := unrecognized(obj, portCreateKeys); e != nil {
			return e
		}
		if _, ok := obj["tags"]; ok && c.noTagsOnCreate {
			return badRequest("Unrecognized attribute(s) 'tags'")
		}
		p, e := c.projectFor(r, obj)
		if e != nil {
			return e
		}
		projects[i] = p
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	var made []*Port
	for i, obj := range objs {
		p, e := c.newPort(projects[i], obj)
		if e != nil {
			for _, m := range made {
				c.st.releasePort(m)
			}
			return e
		}
		made = append(made, p)
	}
	if !bulk {
		writeJSON(w, http.StatusCreated, map[string]any{"port": c.portJSON(made[0])})
		return nil
	}
	out := make([]map[string]any, 0, len(made))
	for _, p := range made {
		out = append(out, c.portJSON(p))
	}
	writeJSON(w, http.StatusCreated, map[string]any{"ports": out})
	return nil
}

// newPort validates obj, allocates addresses and stores the port. Callers
// hold c.st.mu.
func (c *Cloud) newPort(project string, obj map[string]json.RawMessage) (*Port, *apiError) {
	now := nowUTC()
	p := &Port{ID: newID(), ProjectID: project, Status: "DOWN", AdminStateUp: true, VNICType: "normal",
		RevisionNumber: 1, CreatedAt: now, UpdatedAt: now}
	var fixed []struct {
		SubnetID  string `json:"subnet_id"`
		IPAddress string `json:"ip_address"`
	}
	var sgs *[]string
	psec := true
	if e := members(obj, []field{
		{"network_id", &p.NetworkID, true}, {"name", &p.Name, false}, {"description", &p.Description, false},
		{"admin_state_up", &p.AdminStateUp, false}, {"mac_address", &p.MACAddress, false},
		{"fixed_ips", &fixed, false}, {"device_id", &p.DeviceID, false},
		{"device_owner", &p.DeviceOwner, false}, {"security_groups", &sgs, false},
		{"allowed_address_pairs", &p.AllowedAddressPairs, false}, {"binding:host_id", &p.HostID, false},
		{"binding:vnic_type", &p.VNICType, false}, {"tags", &p.Tags, false},
		{"port_security_enabled", &psec, false},
	}); e != nil {
		return nil, e
	}
	p.NoPortSecurity = !psec
	n, e := networksAPI.find(c.st, p.NetworkID)
	if e != nil {
		return nil, e
	}
	if e := checkPortSecurity(psec, sgs, p.AllowedAddressPairs, c.maxPairs); e != nil {
		return nil, e
	}
	if e := checkFixedIPs(fixed); e != nil {
		return nil, e
	}
	switch {
	case p.NoPortSecurity:
		// Without port security a port gets no default group.
		p.SecurityGroups = []string{}
	case sgs == nil:
		p.SecurityGroups = []string{c.st.defaultSecurityGroup(project)}
	default:
		if e := c.checkSecurityGroups(*sgs); e != nil {
			return nil, e
		}
		p.SecurityGroups = *sgs
	}
	if p.MACAddress == "" {
		p.MACAddress = c.st.newMAC(p.NetworkID)
	} else if !c.st.takeMAC(p.NetworkID, p.MACAddress) {
		// Neutron's rule: a MAC is unique per network, not per cloud.
		return nil, errf(409, "MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, p.MACAddress)
	}
	p.AllowedAddressPairs = fillPairs(p.AllowedAddressPairs, p.MACAddress)
	if fixed == nil {
		for _, sid := range n.Subnets {
			fixed = append(fixed, struct {
				SubnetID  string `json:"subnet_id"`
				IPAddress string `json:"ip_address"`
			}{SubnetID: sid})
		}
	}
	c.st.ports[p.ID] = p // so that releasePort can undo a partial allocation
	c.st.portOrder = append(c.st.portOrder, p.ID)
	for _, f := range fixed {
		if e := c.allocateIP(p, n, f.SubnetID, f.IPAddress); e != nil {
			c.st.releasePort(p)
			return nil, e
		}
	}
	if p.HostID != "" {
		c.setBinding(p, p.HostID)
	}
	if len(p.Tags) > 0 {
		// Neutron tags a port in a second step of its create: one more
		// revision.
		p.RevisionNumber++
	}
	return p, nil
}

// allocateIP gives p an address on subnetID (the one asked for, if any).
// Callers hold c.st.mu.
func (c *Cloud) allocateIP(p *Port, n *Network, subnetID, ip string) *apiError {
	var sub *Subnet
	if subnetID == "" && ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return badRequest("Invalid input for fixed_ips. Reason: '%s' is not a valid IP address.", ip)
		}
		for _, sid := range n.Subnets {
			if s := c.st.subnets[sid]; s.contains(a) {
				sub = s
			}
		}
		if sub == nil {
			return errf(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", ip)
		}
	} else {
		s, e := subnetsAPI.find(c.st, subnetID)
		if e != nil {
			return e
		}
		if s.NetworkID != n.ID {
			return badRequest("Failed to create port on network %s, because fixed_ips included invalid subnet %s.", n.ID, subnetID)
		}
		sub = s
	}
	if ip == "" {
		a, ok := sub.allocate(p.ID)
		if !ok {
			return errf(409, "IpAddressGenerationFailure", "No more IP addresses available on network %s.", n.ID)
		}
		p.FixedIPs = append(p.FixedIPs, FixedIP{SubnetID: sub.ID, IPAddress: a.String()})
		return nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || !sub.contains(a) {
		return badRequest("IP address %s is not a valid IP for the specified subnet.", ip)
	}
	if _, taken := sub.used[a]; taken || a == sub.GatewayIP {
		return errf(409, "IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip, sub.ID)
	}
	sub.used[a] = p.ID
	p.FixedIPs = append(p.FixedIPs, FixedIP{SubnetID: sub.ID, IPAddress: a.String()})
	return nil
}

// DefaultMaxAllowedAddressPairs is Neutron's default max_allowed_address_pair.
const DefaultMaxAllowedAddressPairs = 10

// checkPortSecurity applies Neutron's rules (checked against the real one,
// internal/openstack's contract suite): a port without port security takes
// no security groups (400) and no allowed address pairs (409); pairs are
// valid addresses, at most max (the cloud's max_allowed_address_pair),
// none twice. sgs nil is "not given".
func checkPortSecurity(on bool, sgs *[]string, pairs []AddressPair, max int) *apiError {
	if !on && sgs != nil && len(*sgs) > 0 {
		return errf(400, "PortSecurityAndIPRequiredForSecurityGroups",
			"Port security must be enabled and port must have an IP address in order to use security groups.")
	}
	if !on && len(pairs) > 0 {
		return errf(409, "AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	if len(pairs) > max {
		return errf(400, "AllowedAddressPairExhausted", "The number of allowed address pair exceeds the maximum %d.", max)
	}
	seen := map[AddressPair]bool{}
	for _, ap := range pairs {
		if _, err := netip.ParseAddr(ap.IPAddress); err != nil {
			if _, err := netip.ParsePrefix(ap.IPAddress); err != nil {
				return badRequest("'%s' is not a valid IP address", ap.IPAddress)
			}
		}
		if ap.MACAddress != "" {
			if _, err := net.ParseMAC(ap.MACAddress); err != nil {
				return badRequest("'%s' is not a valid MAC address", ap.MACAddress)
			}
		}
		if seen[ap] {
			mac := ap.MACAddress
			if mac == "" {
				mac = "None"
			}
			return errf(400, "DuplicateAddressPairInRequest", "Request contains duplicate address pair: mac_address %s ip_address %s.", mac, ap.IPAddress)
		}
		seen[ap] = true
	}
	return nil
}

// checkFixedIPs refuses an address asked for twice, as Neutron does.
func checkFixedIPs(fixed []struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}) *apiError {
	seen := map[string]bool{}
	for _, f := range fixed {
		if f.IPAddress == "" {
			continue
		}
		if seen[f.IPAddress] {
			return badRequest("Invalid input for fixed_ips. Reason: Duplicate IP address '%s'.", f.IPAddress)
		}
		seen[f.IPAddress] = true
	}
	return nil
}

// checkSecurityGroups makes sure every group exists. Callers hold c.st.mu.
func (c *Cloud) checkSecurityGroups(ids []string) *apiError {
	for _, id := range ids {
		if _, e := sgsAPI.find(c.st, id); e != nil {
			return e
		}
	}
	return nil
}

// fillPairs gives pairs without a MAC the port's MAC, as Neutron does.
func fillPairs(pairs []AddressPair, mac string) []AddressPair {
	out := make([]AddressPair, 0, len(pairs))
	for _, ap := range pairs {
		if ap.MACAddress == "" {
			ap.MACAddress = mac
		}
		out = append(out, ap)
	}
	return out
}

func portNotFound(id string) *apiError {
	return errf(404, "PortNotFound", "Port %s could not be found.", id)
}

// portUpdateKeys are the attributes a port update may change.
var portUpdateKeys = map[string]bool{
	"name": true, "description": true, "admin_state_up": true, "security_groups": true,
	"allowed_address_pairs": true, "device_id": true, "device_owner": true, "binding:host_id": true,
	"binding:vnic_type": true, "binding:profile": true, "port_security_enabled": true,
}

// readOnlyPortKeys may not be changed by an update.
var readOnlyPortKeys = map[string]bool{
	"id": true, "network_id": true, "project_id": true, "tenant_id": true, "status": true,
	"revision_number": true, "created_at": true, "updated_at": true,
}

// checkIfMatch enforces "If-Match: revision_number=N" against rev.
func checkIfMatch(r *http.Request, rev int) *apiError {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil
	}
	v, ok := strings.CutPrefix(h, "revision_number=")
	n, err := strconv.Atoi(v)
	if !ok || err != nil {
		return badRequest("Invalid If-Match header %q: expected revision_number=<number>", h)
	}
	if n != rev {
		return errf(412, "RevisionNumberConstraintFailed", "Constrained to %d, but current revision is %d", n, rev)
	}
	return nil
}

func (c *Cloud) updatePort(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := resourceBody(r, "port")
	if e != nil {
		return e
	}
	for k := range obj {
		if readOnlyPortKeys[k] {
			return badRequest("Cannot update read-only attribute %s", k)
		}
	}
	if e := unrecognized(obj, portUpdateKeys); e != nil {
		return e
	}
	return portsAPI.with(c, r, func(p *Port) *apiError {
		if e := checkIfMatch(r, p.RevisionNumber); e != nil {
			return e
		}
		next := p.clone()
		var sgs []string
		var pairs []AddressPair
		psec := !p.NoPortSecurity
		if e := members(obj, []field{
			{"name", &next.Name, false}, {"description", &next.Description, false},
			{"admin_state_up", &next.AdminStateUp, false}, {"device_id", &next.DeviceID, false},
			{"device_owner", &next.DeviceOwner, false}, {"binding:host_id", &next.HostID, false},
			{"binding:vnic_type", &next.VNICType, false}, {"security_groups", &sgs, false},
			{"allowed_address_pairs", &pairs, false}, {"port_security_enabled", &psec, false},
		}); e != nil {
			return e
		}
		if e := checkPortUpdate(obj, p, psec, sgs, pairs, c.maxPairs); e != nil {
			return e
		}
		next.NoPortSecurity = !psec
		if _, ok := obj["security_groups"]; ok {
			if e := c.checkSecurityGroups(sgs); e != nil {
				return e
			}
			next.SecurityGroups = nonNil(sgs)
		}
		if _, ok := obj["allowed_address_pairs"]; ok {
			next.AllowedAddressPairs = fillPairs(pairs, p.MACAddress)
		}
		if next.HostID != p.HostID {
			if t := c.st.trunkOfParent(p.ID); t != nil {
				c.bindSubports(t, next.HostID)
			}
			c.setBinding(&next, next.HostID)
		}
		touch(&next.RevisionNumber, &next.UpdatedAt)
		*p = next
		writeJSON(w, http.StatusOK, map[string]any{"port": c.portJSON(p)})
		return nil
	})
}

// checkPortUpdate applies Neutron's port security rules to an update of p
// (obj) that leaves port security at on: turning it off while the port keeps
// security groups is 409 PortSecurityPortHasSecurityGroup; otherwise the
// create rules hold for what the port would have.
func checkPortUpdate(obj map[string]json.RawMessage, p *Port, on bool, sgs []string, pairs []AddressPair, maxPairs int) *apiError {
	_, newSGs := obj["security_groups"]
	_, newPairs := obj["allowed_address_pairs"]
	if !newSGs {
		sgs = p.SecurityGroups
	}
	if !newPairs {
		pairs = p.AllowedAddressPairs
	}
	if !on && !p.NoPortSecurity && !newSGs && len(sgs) > 0 {
		return errf(409, "PortSecurityPortHasSecurityGroup",
			"Port has security group associated. Cannot disable port security or IP address until security group is removed.")
	}
	if !newPairs {
		pairs = nil // the pairs already there were checked when set
		if !on && len(p.AllowedAddressPairs) > 0 {
			return errf(409, "AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
		}
	}
	return checkPortSecurity(on, &sgs, pairs, maxPairs)
}

// dropPort removes p unless it is in use. Callers hold c.st.mu.
func (c *Cloud) dropPort(p *Port) *apiError {
	id := p.ID
	if t := c.st.trunkOfParent(id); t != nil {
		return errf(409, "PortInUseAsTrunkParent", "Port %s is currently a parent port for trunk %s.", id, t.ID)
	}
	if t := c.st.trunkOfSubport(id); t != nil {
		return errf(409, "PortInUseAsSubPort", "Port %s is currently a subport for trunk %s.", id, t.ID)
	}
	c.st.releasePort(p)
	return nil
}
