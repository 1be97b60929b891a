package cloudsim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// splitList reads a filter that may be repeated and comma-separated
// (tags=a,b or tags=a&tags=b).
func splitList(q url.Values, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, s := range strings.Split(v, ",") {
			if s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// tagsMatch applies Neutron's tags, tags-any, not-tags and not-tags-any
// filters to have.
func tagsMatch(q url.Values, have []string) bool {
	in := func(t string) bool { return slices.Contains(have, t) }
	all := func(ts []string) bool {
		for _, t := range ts {
			if !in(t) {
				return false
			}
		}
		return true
	}
	anyOf := func(ts []string) bool {
		for _, t := range ts {
			if in(t) {
				return true
			}
		}
		return false
	}
	if ts := splitList(q, "tags"); len(ts) > 0 && !all(ts) {
		return false
	}
	if ts := splitList(q, "tags-any"); len(ts) > 0 && !anyOf(ts) {
		return false
	}
	if ts := splitList(q, "not-tags"); len(ts) > 0 && all(ts) {
		return false
	}
	if ts := splitList(q, "not-tags-any"); len(ts) > 0 && anyOf(ts) {
		return false
	}
	return true
}

// portMatches applies the list filters of GET /v2.0/ports to p.
func portMatches(q url.Values, p *Port) bool {
	for key, val := range map[string]string{
		"network_id": p.NetworkID, "device_id": p.DeviceID, "device_owner": p.DeviceOwner,
		"name": p.Name, "mac_address": p.MACAddress, "status": p.Status, "project_id": p.ProjectID,
		"tenant_id": p.ProjectID, "binding:host_id": p.HostID,
	} {
		if vs, ok := q[key]; ok && !slices.Contains(vs, val) {
			return false
		}
	}
	if ids, ok := q["id"]; ok && !slices.Contains(ids, p.ID) {
		return false
	}
	for _, f := range q["fixed_ips"] {
		k, v, _ := strings.Cut(f, "=")
		found := false
		for _, ip := range p.FixedIPs {
			switch k {
			case "ip_address":
				found = found || ip.IPAddress == v
			case "subnet_id":
				found = found || ip.SubnetID == v
			case "ip_address_substr":
				found = found || strings.Contains(ip.IPAddress, v)
			}
		}
		if !found {
			return false
		}
	}
	return tagsMatch(q, p.Tags)
}

// validTag applies Neutron's tag rules: 1 to 255 characters, no comma.
func validTag(t string) *apiError {
	if t == "" || len(t) > 255 || strings.Contains(t, ",") {
		return badRequest("Invalid input for operation: '%s' is not a valid tag.", t)
	}
	return nil
}

// addTag answers PUT /v2.0/ports/{id}/tags/{tag}: 201, no body.
func (c *Cloud) addTag(w http.ResponseWriter, r *http.Request) *apiError {
	tag := r.PathValue("tag")
	if e := validTag(tag); e != nil {
		return e
	}
	return portsAPI.with(c, r, func(p *Port) *apiError {
		if !slices.Contains(p.Tags, tag) {
			p.Tags = append(p.Tags, tag)
			touch(&p.RevisionNumber, &p.UpdatedAt)
		}
		w.WriteHeader(http.StatusCreated)
		return nil
	})
}

// replaceTags answers PUT /v2.0/ports/{id}/tags with {"tags": [...]}.
func (c *Cloud) replaceTags(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := readBody(r)
	if e != nil {
		return e
	}
	var tags []string
	if e := member(body, "tags", &tags, true); e != nil {
		return e
	}
	for _, t := range tags {
		if e := validTag(t); e != nil {
			return e
		}
	}
	return portsAPI.with(c, r, func(p *Port) *apiError {
		p.Tags = slices.Compact(slices.Sorted(slices.Values(tags)))
		touch(&p.RevisionNumber, &p.UpdatedAt)
		writeJSON(w, http.StatusOK, map[string]any{"tags": nonNil(p.Tags)})
		return nil
	})
}

// deleteTag answers DELETE /v2.0/ports/{id}/tags/{tag}: 204, or 404
// TagNotFound.
func (c *Cloud) deleteTag(w http.ResponseWriter, r *http.Request) *apiError {
	tag := r.PathValue("tag")
	return portsAPI.with(c, r, func(p *Port) *apiError {
		i := slices.Index(p.Tags, tag)
		if i < 0 {
			return errf(404, "TagNotFound", "Tag %s could not be found for port %s.", tag, p.ID)
		}
		p.Tags = slices.Delete(p.Tags, i, i+1)
		touch(&p.RevisionNumber, &p.UpdatedAt)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// checkTag answers GET /v2.0/ports/{id}/tags/{tag}: 204 when the port has
// it, else 404 TagNotFound.
func (c *Cloud) checkTag(w http.ResponseWriter, r *http.Request) *apiError {
	tag := r.PathValue("tag")
	return portsAPI.with(c, r, func(p *Port) *apiError {
		if !slices.Contains(p.Tags, tag) {
			return errf(404, "TagNotFound", "Tag %s could not be found for port %s.", tag, p.ID)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// deleteTags answers DELETE /v2.0/ports/{id}/tags: every tag gone, 204.
func (c *Cloud) deleteTags(w http.ResponseWriter, r *http.Request) *apiError {
	return portsAPI.with(c, r, func(p *Port) *apiError {
		if len(p.Tags) > 0 {
			p.Tags = nil
			touch(&p.RevisionNumber, &p.UpdatedAt)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
