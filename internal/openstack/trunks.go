package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/trunks"
)

// GetTrunk returns trunk id.
func (c *Client) GetTrunk(ctx context.Context, id string) (Trunk, error) {
	op := "get trunk " + id
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Trunk *Trunk `json:"trunk"`
	}
	if err := trunks.Get(rctx, c.network, id).Result.ExtractInto(&out); err != nil {
		return Trunk{}, classify(op, err)
	}
	if out.Trunk == nil || out.Trunk.ID == "" {
		return Trunk{}, malformed(op, "no trunk in the answer")
	}
	return *out.Trunk, nil
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
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out Trunk
	if err := trunks.AddSubports(rctx, c.network, id, trunks.AddSubportsOpts{Subports: ts}).Result.ExtractInto(&out); err != nil {
		return Trunk{}, classify(op, err)
	}
	if out.ID == "" {
		return Trunk{}, malformed(op, "no trunk in the answer")
	}
	return out, nil
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
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out Trunk
	if err := trunks.RemoveSubports(rctx, c.network, id, trunks.RemoveSubportsOpts{Subports: rs}).Result.ExtractInto(&out); err != nil {
		return Trunk{}, classify(op, err)
	}
	if out.ID == "" {
		return Trunk{}, malformed(op, "no trunk in the answer")
	}
	return out, nil
}

// ListSubports returns the subports of trunk id.
func (c *Client) ListSubports(ctx context.Context, id string) ([]Subport, error) {
	op := "list subports of trunk " + id
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Subports *[]Subport `json:"sub_ports"`
	}
	if err := trunks.GetSubports(rctx, c.network, id).Result.ExtractInto(&out); err != nil {
		return nil, classify(op, err)
	}
	if out.Subports == nil {
		return nil, malformed(op, "no sub_ports in the answer")
	}
	return *out.Subports, nil
}
