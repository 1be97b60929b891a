package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// portBody builds the create body of one port.
func (c *Client) portBody(s PortSpec) map[string]any {
	b := map[string]any{"network_id": s.NetworkID}
	switch {
	case len(s.IPs) > 0:
		b["fixed_ips"] = s.IPs
	case s.SubnetID != "":
		b["fixed_ips"] = []FixedIP{{SubnetID: s.SubnetID}}
	}
	for k, v := range map[string]string{"name": s.Name, "device_owner": s.DeviceOwner,
		"device_id": s.DeviceID, "mac_address": s.MACAddress, "project_id": c.project} {
		if v != "" {
			b[k] = v
		}
	}
	if s.SecurityGroups != nil {
		b["security_groups"] = s.SecurityGroups
	}
	if len(s.Tags) > 0 {
		b["tags"] = s.Tags
	}
	if s.PortSecurityEnabled != nil {
		b["port_security_enabled"] = *s.PortSecurityEnabled
	}
	if len(s.AllowedAddressPairs) > 0 {
		b["allowed_address_pairs"] = s.AllowedAddressPairs
	}
	return b
}

// CreatePort creates one port. Tags are sent in the create body and, if
// the cloud ignored them, added afterwards.
func (c *Client) CreatePort(ctx context.Context, s PortSpec) (Port, error) {
	op := "create port on network " + s.NetworkID
	// One timeout bounds the create and its retry without tags.
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	body := c.portBody(s)
	create := func() (Port, error) {
		return request(rctx, c, op, "port", "port",
			call(c.network, "POST", []string{"ports"}, map[string]any{"port": body}, nil), hasID[Port])
	}
	p, err := create()
	if rejectedTags(err) {
		// A Neutron without tag-on-create: create, then tag.
		delete(body, "tags")
		p, err = create()
	}
	if err != nil {
		return Port{}, err
	}
	return c.ensureTags(ctx, p, s.Tags)
}

// CreatePorts creates ports in one bulk request (all or none).
func (c *Client) CreatePorts(ctx context.Context, specs []PortSpec) ([]Port, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	op := fmt.Sprintf("create %d ports on network %s", len(specs), specs[0].NetworkID)
	bodies := make([]map[string]any, 0, len(specs))
	for _, s := range specs {
		bodies = append(bodies, c.portBody(s))
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Ports []Port `json:"ports"`
	}
	post := func() error {
		return classify(op, call(c.network, "POST", []string{"ports"}, map[string]any{"ports": bodies}, nil, 201)(rctx, &out))
	}
	err := post()
	if rejectedTags(err) {
		for _, b := range bodies {
			delete(b, "tags")
		}
		err = post()
	}
	if err != nil {
		return nil, err
	}
	if len(out.Ports) != len(specs) {
		return nil, malformed(op, fmt.Sprintf("%d ports in the answer", len(out.Ports)))
	}
	for i := range out.Ports {
		p, err := c.ensureTags(ctx, out.Ports[i], specs[i].Tags)
		if err != nil {
			return out.Ports, err
		}
		out.Ports[i] = p
	}
	return out.Ports, nil
}

// rejectedTags tells a 400 about the tags attribute (a Neutron that does
// not take tags in create bodies).
func rejectedTags(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 400 && strings.Contains(e.Message, "tags")
}

// ensureTags adds the tags a cloud without tag-on-create left out.
func (c *Client) ensureTags(ctx context.Context, p Port, tags []string) (Port, error) {
	missing := false
	for _, t := range tags {
		if !slices.Contains(p.Tags, t) {
			missing = true
		}
	}
	if !missing {
		return p, nil
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	all := append(slices.Clone(p.Tags), tags...)
	slices.Sort(all)
	got, err := c.replaceTags(rctx, "tag port "+p.ID, p.ID, slices.Compact(all))
	if err != nil {
		return p, err
	}
	p.Tags = got
	p.RevisionNumber++
	return p, nil
}

// ReplacePortTags sets the tags of port id to tags (PUT /ports/{id}/tags,
// one request) and returns the tags Neutron kept.
func (c *Client) ReplacePortTags(ctx context.Context, id string, tags []string) ([]string, error) {
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	if tags == nil {
		tags = []string{}
	}
	return c.replaceTags(rctx, "replace tags of port "+id, id, tags)
}

// replaceTags sets the tags of port id (PUT /ports/{id}/tags) and returns
// the tags Neutron kept.
func (c *Client) replaceTags(ctx context.Context, op, id string, tags []string) ([]string, error) {
	var out struct {
		Tags []string `json:"tags"`
	}
	err := call(c.network, "PUT", []string{"ports", id, "tags"}, map[string]any{"tags": tags}, nil, 200)(ctx, &out)
	if err != nil {
		return nil, classify(op, err)
	}
	return out.Tags, nil
}

// GetPort returns port id.
func (c *Client) GetPort(ctx context.Context, id string) (Port, error) {
	return request(ctx, c, "get port "+id, "port", "port",
		call(c.network, "GET", []string{"ports", id}, nil, nil), hasID[Port])
}

// query is f as the query of a port listing.
func (f PortFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"network_id": f.NetworkID, "device_id": f.DeviceID,
		"device_owner": f.DeviceOwner, "name": f.Name, "project_id": f.ProjectID, "tags": strings.Join(f.Tags, ","),
		"tags-any": strings.Join(f.TagsAny, ",")} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.FixedIP != "" {
		q.Add("fixed_ips", "ip_address="+f.FixedIP)
	}
	if f.SubnetID != "" {
		q.Add("fixed_ips", "subnet_id="+f.SubnetID)
	}
	return q
}

// portFields are the attributes a port listing asks Neutron for
// (?fields=): Port's, the only ones a caller can read. The rest of a
// Neutron port (descriptions, timestamps, binding profiles and details,
// DNS assignments, …) is neither sent nor decoded.
var portFields = jsonNames(reflect.TypeFor[Port]())

// jsonNames returns the JSON names of struct type t's fields.
func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// listPageSize is how many ports a page of a listing holds (?limit=).
// Each page is decoded straight into Ports, so a listing of a cluster's
// thousands of ports holds one page of JSON at a time, never the whole
// answer (nor maps of it).
const listPageSize = 500

// link is one of a listing's links to other pages.
type link struct {
	Rel string `json:"rel"`
}

// ListPorts returns the ports that match f, with the attributes of Port
// only (portFields), read page by page (listPageSize a page, each page
// after the last port of the one before: ?marker=, as Neutron pages). A
// cloud that does not page answers everything at once, without a link to
// a next page: that answer is the list.
func (c *Client) ListPorts(ctx context.Context, f PortFilter) ([]Port, error) {
	op := fmt.Sprintf("list ports %+v", f)
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	size := c.pageSize
	if size <= 0 {
		size = listPageSize
	}
	q := f.query()
	q["fields"] = portFields
	q.Set("limit", strconv.Itoa(size))
	var out []Port
	for {
		var page struct {
			Ports []Port `json:"ports"`
			Links []link `json:"ports_links"`
		}
		if _, err := c.network.Get(rctx, c.network.ServiceURL("ports")+"?"+q.Encode(), &page, nil); err != nil {
			return nil, classify(op, err)
		}
		out = append(out, page.Ports...)
		more := slices.ContainsFunc(page.Links, func(l link) bool { return l.Rel == "next" })
		if !more || len(page.Ports) != size || page.Ports[size-1].ID == "" {
			return out, nil
		}
		q.Set("marker", page.Ports[size-1].ID)
	}
}

// UpdatePortSecurityGroups sets the security groups of port id.
func (c *Client) UpdatePortSecurityGroups(ctx context.Context, id string, groups []string) (Port, error) {
	if groups == nil {
		groups = []string{}
	}
	return c.updatePort(ctx, "update security groups of port "+id, id, map[string]any{"security_groups": groups}, -1)
}

// UpdateAllowedAddressPairs replaces the allowed address pairs of port id
// if its revision is still revision (If-Match); otherwise it fails with
// ErrConflict (HTTP 412). A negative revision skips the check.
func (c *Client) UpdateAllowedAddressPairs(ctx context.Context, id string, pairs []AddressPair, revision int) (Port, error) {
	if pairs == nil {
		pairs = []AddressPair{}
	}
	return c.updatePort(ctx, fmt.Sprintf("update allowed address pairs of port %s at revision %d", id, revision), id,
		map[string]any{"allowed_address_pairs": pairs}, revision)
}

// ModifyAllowedAddressPairs reads port id, applies change to its pairs and
// writes them back with the revision check, retrying with b on conflicts
// (someone else changed the port) and transient errors.
func (c *Client) ModifyAllowedAddressPairs(ctx context.Context, id string, b Backoff,
	change func([]AddressPair) []AddressPair) (Port, error) {
	var out Port
	err := Retry(ctx, b, func(ctx context.Context) error {
		p, err := c.GetPort(ctx, id)
		if err != nil {
			return err
		}
		out, err = c.UpdateAllowedAddressPairs(ctx, id, change(slices.Clone(p.AllowedAddressPairs)), p.RevisionNumber)
		return err
	}, RetryOnConflict())
	return out, err
}

// updatePort sets the attributes of port id (PUT /ports/{id}), if its
// revision is still revision (If-Match) unless revision is negative.
func (c *Client) updatePort(ctx context.Context, op, id string, attrs map[string]any, revision int) (Port, error) {
	var headers map[string]string
	if revision >= 0 {
		headers = map[string]string{"If-Match": "revision_number=" + strconv.Itoa(revision)}
	}
	return request(ctx, c, op, "port", "port",
		call(c.network, "PUT", []string{"ports", id}, map[string]any{"port": attrs}, headers, 200, 201), hasID[Port])
}

// DeletePort deletes port id; a port already gone is a success.
func (c *Client) DeletePort(ctx context.Context, id string) error {
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	return removed(classify("delete port "+id, call(c.network, "DELETE", []string{"ports", id}, nil, nil)(rctx, nil)))
}
