package cloudsim

import (
	"net/http"
	"strings"
)

func novaRoutes(c *Cloud) []route {
	const n = "/compute/v2.1"
	h := novaHandler
	return []route{
		{"GET " + n + "/servers/{id}", "nova.servers.get", h(serversAPI.get(c))},
		{"POST " + n + "/servers/{id}/os-interface", "nova.interfaces.attach", h(c.attachInterface)},
		{"GET " + n + "/servers/{id}/os-interface", "nova.interfaces.list", h(c.listInterfaces)},
		{"GET " + n + "/servers/{id}/os-interface/{port}", "nova.interfaces.get", h(c.getInterface)},
		{"DELETE " + n + "/servers/{id}/os-interface/{port}", "nova.interfaces.detach", h(c.detachInterface)},
	}
}

func serverNotFound(id string) *apiError {
	return errf(404, "", "Instance %s could not be found.", id)
}

var serversAPI = resource[Server]{one: "server",
	records:  func(st *store) map[string]*Server { return st.servers },
	notFound: serverNotFound,
	render:   (*Cloud).serverJSON,
}

// serverJSON renders s as Nova does. Callers hold c.st.mu.
func (c *Cloud) serverJSON(s *Server) map[string]any {
	addrs := map[string][]map[string]any{}
	for _, id := range c.st.portOrder {
		p := c.st.ports[id]
		if p.DeviceID != s.ID {
			continue
		}
		name := p.NetworkID
		if n, ok := c.st.networks[p.NetworkID]; ok && n.Name != "" {
			name = n.Name
		}
		for _, ip := range p.FixedIPs {
			v := 4
			if strings.Contains(ip.IPAddress, ":") {
				v = 6
			}
			addrs[name] = append(addrs[name], map[string]any{"addr": ip.IPAddress, "version": v,
				"OS-EXT-IPS-MAC:mac_addr": p.MACAddress, "OS-EXT-IPS:type": "fixed"})
		}
	}
	return map[string]any{
		"id": s.ID, "name": s.Name, "status": s.Status, "tenant_id": s.ProjectID, "user_id": "kuryr-user-id",
		"OS-EXT-SRV-ATTR:host": s.Host, "OS-EXT-SRV-ATTR:hypervisor_hostname": s.Host,
		"OS-EXT-SRV-ATTR:instance_name": "instance-" + s.ID[:8], "OS-EXT-STS:vm_state": "active",
		"OS-EXT-STS:power_state": 1, "OS-EXT-STS:task_state": nil, "hostId": s.Host,
		"addresses": addrs, "metadata": map[string]string{}, "image": "", "flavor": map[string]any{},
		"links": []any{}, "created": timeString(s.CreatedAt), "updated": timeString(s.CreatedAt),
	}
}

// interfaceJSON renders p as an interfaceAttachment.
func interfaceJSON(p *Port, serverID string) map[string]any {
	return map[string]any{
		"port_id": p.ID, "net_id": p.NetworkID, "mac_addr": p.MACAddress, "port_state": p.Status,
		"fixed_ips": nonNil(p.FixedIPs), "server_id": serverID, "tag": nil,
	}
}

// attachInterface answers POST /servers/{id}/os-interface with
// {"interfaceAttachment": {"port_id": ...}}: the port is bound to the
// server's host (device_id, device_owner compute:nova, binding:host_id,
// status ACTIVE), the server's hook is told, and the answer is 200.
func (c *Cloud) attachInterface(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := resourceBody(r, "interfaceAttachment")
	if e != nil {
		return e
	}
	var portID, netID string
	if e := members(obj, []field{{"port_id", &portID, false}, {"net_id", &netID, false}}); e != nil {
		return e
	}
	if portID == "" {
		return badRequest("the simulated cloud attaches existing ports only: port_id is required")
	}
	serverID := r.PathValue("id")
	c.st.mu.Lock()
	s, ok := c.st.servers[serverID]
	if !ok {
		c.st.mu.Unlock()
		return serverNotFound(serverID)
	}
	p, ok := c.st.ports[portID]
	if !ok {
		c.st.mu.Unlock()
		return errf(404, "", "Port id %s could not be found.", portID)
	}
	if netID != "" && netID != p.NetworkID {
		c.st.mu.Unlock()
		return badRequest("Port %s is not on network %s.", portID, netID)
	}
	if p.DeviceID != "" {
		c.st.mu.Unlock()
		return errf(409, "", "Port %s is still in use.", portID)
	}
	p.DeviceID, p.DeviceOwner = s.ID, "compute:nova"
	// Nova finishes an attach only once the VIF is plugged (Neutron's
	// network-vif-plugged event), so the simulated Nova plugs it even in
	// NoAgent mode.
	c.bind(p, s.Host, true)
	touch(&p.RevisionNumber, &p.UpdatedAt)
	snapshot := p.clone()
	out := interfaceJSON(p, s.ID)
	c.st.mu.Unlock()

	if h := c.hook(serverID); h != nil {
		if err := h.Attached(r.Context(), serverID, snapshot); err != nil {
			c.unbind(portID, serverID)
			return errf(500, "", "Failed to attach network adapter device to %s: %v", serverID, err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"interfaceAttachment": out})
	return nil
}

// unbind clears the binding of portID if it is still on serverID.
func (c *Cloud) unbind(portID, serverID string) (Port, bool) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	p, ok := c.st.ports[portID]
	if !ok || p.DeviceID != serverID {
		return Port{}, false
	}
	p.DeviceID, p.DeviceOwner, p.HostID, p.Status = "", "", "", "DOWN"
	touch(&p.RevisionNumber, &p.UpdatedAt)
	return p.clone(), true
}

func (c *Cloud) listInterfaces(w http.ResponseWriter, r *http.Request) *apiError {
	serverID := r.PathValue("id")
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if _, e := serversAPI.find(c.st, serverID); e != nil {
		return e
	}
	out := []map[string]any{}
	for _, id := range c.st.portOrder {
		if p := c.st.ports[id]; p.DeviceID == serverID && strings.HasPrefix(p.DeviceOwner, "compute:") {
			out = append(out, interfaceJSON(p, serverID))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"interfaceAttachments": out})
	return nil
}

func (c *Cloud) getInterface(w http.ResponseWriter, r *http.Request) *apiError {
	serverID, portID := r.PathValue("id"), r.PathValue("port")
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if _, e := serversAPI.find(c.st, serverID); e != nil {
		return e
	}
	p, ok := c.st.ports[portID]
	if !ok || p.DeviceID != serverID {
		return errf(404, "", "Attachment %s could not be found.", portID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"interfaceAttachment": interfaceJSON(p, serverID)})
	return nil
}

// detachInterface answers DELETE /servers/{id}/os-interface/{port}: 202,
// the port unbound, the hook told.
func (c *Cloud) detachInterface(w http.ResponseWriter, r *http.Request) *apiError {
	serverID, portID := r.PathValue("id"), r.PathValue("port")
	c.st.mu.Lock()
	_, ok := c.st.servers[serverID]
	c.st.mu.Unlock()
	if !ok {
		return serverNotFound(serverID)
	}
	p, ok := c.unbind(portID, serverID)
	if !ok {
		return errf(404, "", "Port %s is not attached", portID)
	}
	if h := c.hook(serverID); h != nil {
		if err := h.Detached(r.Context(), serverID, p); err != nil {
			return errf(500, "", "Failed to detach network adapter device from %s: %v", serverID, err)
		}
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
