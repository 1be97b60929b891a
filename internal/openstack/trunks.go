package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/trunks"
)

// GetTrunk returns trunk id.
func (c *Client) GetTrunk(ctx context.Context, id string) (Trunk, error) {
	return request(ctx, c, "get trunk "+id, "trunk", "trunk", func(ctx context.Context) gophercloud.Result {
		return trunks.Get(ctx, c.network, id).Result
	}, hasID[Trunk])
}

// AddSubports adds subports to trunk id. A VLAN ID already used on the
// trunk fails with ErrConflict (Neutron's DuplicateSubPort); pick another.
func (c *Client) AddSubports(ctx context.Context, id string, subs []Subport) (Trunk, error) {
	op := fmt.Sprintf("add %d subports to trunk %s", len(subs), id)
	ts := make([]trunks.Subport, 0, len(subs))
	for _, s := range subs {
		typ := s.SegmentationType
		if typ == "" {
			typ = "vlan"
		}
		ts = append(ts, trunks.Subport{PortID: s.PortID, SegmentationType: typ, SegmentationID: s.SegmentationID})
	}
	// Neutron answers with the trunk itself, not under "trunk".
	return request(ctx, c, op, "", "trunk", func(ctx context.Context) gophercloud.Result {
		return trunks.AddSubports(ctx, c.network, id, trunks.AddSubportsOpts{Subports: ts}).Result
	}, hasID[Trunk])
}

// RemoveSubports removes the ports from trunk id. Ports that are no longer
// subports of the trunk are not an error.
func (c *Client) RemoveSubports(ctx context.Context, id string, portIDs []string) (Trunk, error) {
	op := fmt.Sprintf("remove subports %v from trunk %s", portIDs, id)
	current, err := c.ListSubports(ctx, id)
	if err != nil {
		return Trunk{}, err
	}
	var rs []trunks.RemoveSubport
	for _, pid := range portIDs {
		for _, s := range current {
			if s.PortID == pid {
				rs = append(rs, trunks.RemoveSubport{PortID: pid})
			}
		}
	}
	if len(rs) == 0 {
		return c.GetTrunk(ctx, id)
	}
	return request(ctx, c, op, "", "trunk", func(ctx context.Context) gophercloud.Result {
		return trunks.RemoveSubports(ctx, c.network, id, trunks.RemoveSubportsOpts{Subports: rs}).Result
	}, hasID[Trunk])
}

// ListSubports returns the subports of trunk id.
func (c *Client) ListSubports(ctx context.Context, id string) ([]Subport, error) {
	return request(ctx, c, "list subports of trunk "+id, "sub_ports", "sub_ports", func(ctx context.Context) gophercloud.Result {
		return trunks.GetSubports(ctx, c.network, id).Result
	}, present[[]Subport])
}
