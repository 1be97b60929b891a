package openstack

import (
	"context"
	"errors"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// GetNetwork returns network id.
func (c *Client) GetNetwork(ctx context.Context, id string) (Network, error) {
	op := "get network " + id
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Network *Network `json:"network"`
	}
	if err := networks.Get(rctx, c.network, id).Result.ExtractInto(&out); err != nil {
		return Network{}, classify(op, err)
	}
	if out.Network == nil || out.Network.ID == "" {
		return Network{}, malformed(op, "no network in the answer")
	}
	return *out.Network, nil
}

// GetSubnet returns subnet id.
func (c *Client) GetSubnet(ctx context.Context, id string) (Subnet, error) {
	op := "get subnet " + id
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Subnet *Subnet `json:"subnet"`
	}
	if err := subnets.Get(rctx, c.network, id).Result.ExtractInto(&out); err != nil {
		return Subnet{}, classify(op, err)
	}
	if out.Subnet == nil || out.Subnet.ID == "" {
		return Subnet{}, malformed(op, "no subnet in the answer")
	}
	return *out.Subnet, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
