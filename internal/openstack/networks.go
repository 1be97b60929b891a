package openstack

import (
	"context"
	"errors"
)

// GetNetwork returns network id.
func (c *Client) GetNetwork(ctx context.Context, id string) (Network, error) {
	return request(ctx, c, "get network "+id, "network", "network",
		call(c.network, "GET", []string{"networks", id}, nil, nil), hasID[Network])
}

// GetSubnet returns subnet id.
func (c *Client) GetSubnet(ctx context.Context, id string) (Subnet, error) {
	return request(ctx, c, "get subnet "+id, "subnet", "subnet",
		call(c.network, "GET", []string{"subnets", id}, nil, nil), hasID[Subnet])
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
