package openstack

import (
	"context"
	"errors"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// GetNetwork returns network id.
func (c *Client) GetNetwork(ctx context.Context, id string) (Network, error) {
	return request(ctx, c, "get network "+id, "network", "network", func(ctx context.Context) gophercloud.Result {
		return networks.Get(ctx, c.network, id).Result
	}, hasID[Network])
}

// GetSubnet returns subnet id.
func (c *Client) GetSubnet(ctx context.Context, id string) (Subnet, error) {
	return request(ctx, c, "get subnet "+id, "subnet", "subnet", func(ctx context.Context) gophercloud.Result {
		return subnets.Get(ctx, c.network, id).Result
	}, hasID[Subnet])
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
