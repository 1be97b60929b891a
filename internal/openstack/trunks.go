package openstack

import (
	"context"
	"fmt"
)

// GetTrunk returns trunk id.
func (c *Client) GetTrunk(ctx context.Context, id string) (Trunk, error) {
	return request(ctx, c, "get trunk "+id, "trunk", "trunk",
		call(c.network, "GET", []string{"trunks", id}, nil, nil), hasID[Trunk])
}

// AddSubports adds subports to trunk id. A VLAN ID already used on the
// trunk fails with ErrConflict (Neutron's DuplicateSubPort); pick another.
func (c *Client) AddSubports(ctx context.Context, id string, subs []Subport) (Trunk, error) {
	op := fmt.Sprintf("add %d subports to trunk %s", len(subs), id)
	ts := make([]Subport, 0, len(subs))
	for _, s := range subs {
		typ := s.SegmentationType
		if typ == "" {
			typ = "vlan"
		}
		ts = append(ts, Subport{PortID: s.PortID, SegmentationType: typ, SegmentationID: s.SegmentationID})
	}
	// Neutron answers with the trunk itself, not under "trunk".
	return request(ctx, c, op, "", "trunk", call(c.network, "PUT", []string{"trunks", id, "add_subports"},
		map[string]any{"sub_ports": ts}, nil, 200), hasID[Trunk])
}

// RemoveSubports removes the ports from trunk id. Ports that are no longer
// subports of the trunk are not an error.
func (c *Client) RemoveSubports(ctx context.Context, id string, portIDs []string) (Trunk, error) {
	op := fmt.Sprintf("remove subports %v from trunk %s", portIDs, id)
	current, err := c.ListSubports(ctx, id)
	if err != nil {
		return Trunk{}, err
	}
	type removal struct {
		PortID string `json:"port_id"`
	}
	var rs []removal
	for _, pid := range portIDs {
		for _, s := range current {
			if s.PortID == pid {
				rs = append(rs, removal{PortID: pid})
			}
		}
	}
	if len(rs) == 0 {
		return c.GetTrunk(ctx, id)
	}
	return request(ctx, c, op, "", "trunk", call(c.network, "PUT", []string{"trunks", id, "remove_subports"},
		map[string]any{"sub_ports": rs}, nil, 200), hasID[Trunk])
}

// ListSubports returns the subports of trunk id.
func (c *Client) ListSubports(ctx context.Context, id string) ([]Subport, error) {
	return request(ctx, c, "list subports of trunk "+id, "sub_ports", "sub_ports",
		call(c.network, "GET", []string{"trunks", id, "get_subports"}, nil, nil, 200), present[[]Subport])
}
