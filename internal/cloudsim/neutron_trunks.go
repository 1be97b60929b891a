package cloudsim

import (
	"net/http"
	"net/url"
)

var trunksAPI = resource[Trunk]{one: "trunk", many: "trunks",
	records:  func(st *store) map[string]*Trunk { return st.trunks },
	notFound: func(id string) *apiError { return errf(404, "TrunkNotFound", "Trunk %s could not be found.", id) },
	render:   (*Cloud).trunkJSON,
	matches: func(q url.Values, t *Trunk) bool {
		return fieldsMatch(q, map[string]string{"port_id": t.PortID, "name": t.Name}) && tagsMatch(q, t.Tags)
	},
}

// trunkJSON renders t as Neutron does. Callers hold c.st.mu.
func (c *Cloud) trunkJSON(t *Trunk) map[string]any {
	status := "DOWN"
	if p, ok := c.st.ports[t.PortID]; ok && p.HostID != "" {
		status = "ACTIVE"
	}
	return map[string]any{
		"id": t.ID, "name": t.Name, "description": t.Description, "port_id": t.PortID,
		"project_id": t.ProjectID, "tenant_id": t.ProjectID, "admin_state_up": t.AdminStateUp,
		"status": status, "sub_ports": nonNil(t.Subports), "tags": nonNil(t.Tags),
		"revision_number": t.RevisionNumber,
		"created_at":      timeString(t.CreatedAt), "updated_at": timeString(t.UpdatedAt),
	}
}

// bindSubports gives t's subports the host of its parent, as the trunk
// service plugin does when the parent is bound. Callers hold c.st.mu.
func (c *Cloud) bindSubports(t *Trunk, host string) {
	for _, sp := range t.Subports {
		if p, ok := c.st.ports[sp.PortID]; ok {
			c.setBinding(p, host)
			touch(&p.RevisionNumber, &p.UpdatedAt)
		}
	}
}

func (c *Cloud) createTrunk(w http.ResponseWriter, r *http.Request) *apiError {
	obj, project, e := c.createBody(r, "trunk")
	if e != nil {
		return e
	}
	now := nowUTC()
	t := &Trunk{ID: newID(), ProjectID: project, AdminStateUp: true, RevisionNumber: 1, CreatedAt: now, UpdatedAt: now}
	var subs []Subport
	if e := members(obj, []field{
		{"port_id", &t.PortID, true}, {"name", &t.Name, false}, {"description", &t.Description, false},
		{"admin_state_up", &t.AdminStateUp, false}, {"sub_ports", &subs, false},
	}); e != nil {
		return e
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if _, e := portsAPI.find(c.st, t.PortID); e != nil {
		return e
	}
	if e := c.checkTrunkable(t.PortID); e != nil {
		return e
	}
	if e := c.checkParentUnbound(t.PortID); e != nil {
		return e
	}
	if e := c.validateSubports(t, subs); e != nil {
		return e
	}
	c.st.trunks[t.ID] = t
	c.attachSubports(t, subs)
	writeJSON(w, http.StatusCreated, map[string]any{"trunk": c.trunkJSON(t)})
	return nil
}

// dropTrunk removes t unless it is in use. Callers hold c.st.mu.
func (c *Cloud) dropTrunk(t *Trunk) *apiError {
	if p, ok := c.st.ports[t.PortID]; ok && p.HostID != "" {
		return errf(409, "TrunkInUse", "Trunk %s is currently in use.", t.ID)
	}
	c.detachSubports(t, t.Subports)
	delete(c.st.trunks, t.ID)
	return nil
}

// subportsBody reads {"sub_ports": [...]}.
func subportsBody(r *http.Request) ([]Subport, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var subs []Subport
	if e := member(body, "sub_ports", &subs, true); e != nil {
		return nil, e
	}
	return subs, nil
}

// validateSubports checks subs for adding to t: ports exist and are free,
// VLAN IDs are valid and unique on the trunk. Callers hold c.st.mu.
func (c *Cloud) validateSubports(t *Trunk, subs []Subport) *apiError {
	seen := map[int]bool{}
	for _, sp := range t.Subports {
		seen[sp.SegmentationID] = true
	}
	ports := map[string]bool{}
	for _, sp := range subs {
		if sp.PortID == "" {
			return invalidInput("Invalid input for operation: port_id is required for a subport.")
		}
		if sp.PortID == t.PortID {
			return parentPortInUse(sp.PortID)
		}
		if sp.SegmentationType != "vlan" {
			return invalidInput("Unknown segmentation_type '%s'", sp.SegmentationType)
		}
		if sp.SegmentationID < 1 || sp.SegmentationID > 4094 {
			return invalidInput("Segmentation ID '%d' is not in range", sp.SegmentationID)
		}
		p, e := portsAPI.find(c.st, sp.PortID)
		if e != nil {
			return e
		}
		if e := c.checkTrunkable(sp.PortID); e != nil {
			return e
		}
		if ports[sp.PortID] {
			return errf(409, "TrunkPortInUse", "Port %s is in use by another trunk.", sp.PortID)
		}
		if p.DeviceID != "" {
			return errf(409, "PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.",
				p.ID, p.NetworkID, p.DeviceID)
		}
		if seen[sp.SegmentationID] {
			return errf(409, "DuplicateSubPort", "segmentation_type %s and segmentation_id %d already in use on trunk %s.",
				sp.SegmentationType, sp.SegmentationID, t.ID)
		}
		seen[sp.SegmentationID] = true
		ports[sp.PortID] = true
	}
	return nil
}

func invalidInput(format string, args ...any) *apiError {
	return errf(400, "InvalidInput", "Invalid input for operation: "+format+".", args...)
}

func parentPortInUse(id string) *apiError {
	return errf(409, "ParentPortInUse", "Port %s is currently in use and is not eligible for use as a parent port.", id)
}

// checkTrunkable applies Neutron's TrunkPortValidator: a port that is a
// subport is TrunkPortInUse, one that is a trunk parent ParentPortInUse.
// Callers hold c.st.mu.
func (c *Cloud) checkTrunkable(portID string) *apiError {
	if c.st.trunkOfSubport(portID) != nil {
		return errf(409, "TrunkPortInUse", "Port %s is in use by another trunk.", portID)
	}
	if c.st.trunkOfParent(portID) != nil {
		return parentPortInUse(portID)
	}
	return nil
}

// checkParentUnbound: Neutron's trunk plugin takes no bound port as a new
// trunk's parent (make the trunk first, then bind the VM's port).
func (c *Cloud) checkParentUnbound(portID string) *apiError {
	if p, ok := c.st.ports[portID]; ok && p.HostID != "" {
		return parentPortInUse(portID)
	}
	return nil
}

// attachSubports adds validated subs to t. Callers hold c.st.mu.
func (c *Cloud) attachSubports(t *Trunk, subs []Subport) {
	host := ""
	if p, ok := c.st.ports[t.PortID]; ok {
		host = p.HostID
	}
	for _, sp := range subs {
		t.Subports = append(t.Subports, sp)
		if c.noAgent {
			continue // only an agent binds subports
		}
		// As the trunk RPC's update_subport_bindings: host and owner;
		// device_id stays as it was.
		p := c.st.ports[sp.PortID]
		p.DeviceOwner = "trunk:subport"
		c.setBinding(p, host)
		touch(&p.RevisionNumber, &p.UpdatedAt)
	}
}

// detachSubports removes subs from t. With an agent their ports turn
// DOWN (the agent unwires them and reports them down) and keep their
// binding and device_owner trunk:subport, as in Neutron with ML2/OVS:
// remove_subports changes nothing on the port, and the agent's unwiring
// calls no update_subport_bindings. Callers hold c.st.mu.
func (c *Cloud) detachSubports(t *Trunk, subs []Subport) {
	drop := map[string]bool{}
	for _, sp := range subs {
		drop[sp.PortID] = true
		if p, ok := c.st.ports[sp.PortID]; ok && !c.noAgent {
			p.Status = "DOWN"
			touch(&p.RevisionNumber, &p.UpdatedAt)
		}
	}
	kept := []Subport{}
	for _, sp := range t.Subports {
		if !drop[sp.PortID] {
			kept = append(kept, sp)
		}
	}
	t.Subports = kept
}

// addSubports answers PUT /v2.0/trunks/{id}/add_subports with the trunk
// (not wrapped in "trunk", as Neutron does).
func (c *Cloud) addSubports(w http.ResponseWriter, r *http.Request) *apiError {
	subs, e := subportsBody(r)
	if e != nil {
		return e
	}
	return trunksAPI.with(c, r, func(t *Trunk) *apiError {
		if e := c.validateSubports(t, subs); e != nil {
			return e
		}
		c.attachSubports(t, subs)
		touch(&t.RevisionNumber, &t.UpdatedAt)
		writeJSON(w, http.StatusOK, c.trunkJSON(t))
		return nil
	})
}

// removeSubports answers PUT /v2.0/trunks/{id}/remove_subports; a port
// that is not a subport of the trunk is 404 SubPortNotFound.
func (c *Cloud) removeSubports(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := readBody(r)
	if e != nil {
		return e
	}
	var subs []struct {
		PortID string `json:"port_id"`
	}
	if e := member(body, "sub_ports", &subs, true); e != nil {
		return e
	}
	return trunksAPI.with(c, r, func(t *Trunk) *apiError {
		var drop []Subport
		for _, s := range subs {
			found := false
			for _, sp := range t.Subports {
				if sp.PortID == s.PortID {
					drop, found = append(drop, sp), true
				}
			}
			if !found {
				return errf(404, "SubPortNotFound", "SubPort %s cannot be found on trunk %s.", s.PortID, t.ID)
			}
		}
		c.detachSubports(t, drop)
		touch(&t.RevisionNumber, &t.UpdatedAt)
		writeJSON(w, http.StatusOK, c.trunkJSON(t))
		return nil
	})
}
