package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/attachinterfaces"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// novaRequest is request for Nova, which may not be configured.
func novaRequest[T any](ctx context.Context, c *Client, op, key string,
	send func(context.Context) gophercloud.Result, complete func(*T) bool) (T, error) {
	if err := c.needCompute(op); err != nil {
		var zero T
		return zero, err
	}
	return request(ctx, c, op, key, key, send, complete)
}

// GetServer returns Nova server id.
func (c *Client) GetServer(ctx context.Context, id string) (Server, error) {
	return novaRequest(ctx, c, "get server "+id, "server", func(ctx context.Context) gophercloud.Result {
		return servers.Get(ctx, c.compute, id).Result
	}, hasID[Server])
}

// AttachInterface asks Nova to attach port portID to server serverID (a
// hot-plugged NIC in the VM). The port must exist and be unbound.
func (c *Client) AttachInterface(ctx context.Context, serverID, portID string) (Interface, error) {
	op := fmt.Sprintf("attach port %s to server %s", portID, serverID)
	return novaRequest(ctx, c, op, "interfaceAttachment", func(ctx context.Context) gophercloud.Result {
		return attachinterfaces.Create(ctx, c.compute, serverID, attachinterfaces.CreateOpts{PortID: portID}).Result
	}, hasID[Interface])
}

// ListInterfaces returns the interfaces attached to server serverID.
func (c *Client) ListInterfaces(ctx context.Context, serverID string) ([]Interface, error) {
	return novaRequest(ctx, c, "list interfaces of server "+serverID, "interfaceAttachments",
		func(ctx context.Context) gophercloud.Result {
			return allPages(ctx, attachinterfaces.List(c.compute, serverID))
		}, present[[]Interface])
}

// GetInterface returns the attachment of port portID to server serverID.
func (c *Client) GetInterface(ctx context.Context, serverID, portID string) (Interface, error) {
	op := fmt.Sprintf("get interface %s of server %s", portID, serverID)
	return novaRequest(ctx, c, op, "interfaceAttachment", func(ctx context.Context) gophercloud.Result {
		return attachinterfaces.Get(ctx, c.compute, serverID, portID).Result
	}, hasID[Interface])
}

// DetachInterface asks Nova to detach port portID from server serverID.
// Nova answers 202 and finishes later: wait with GetInterface (until
// ErrNotFound) before deleting the port. An interface already detached is
// a success.
func (c *Client) DetachInterface(ctx context.Context, serverID, portID string) error {
	op := fmt.Sprintf("detach port %s from server %s", portID, serverID)
	if err := c.needCompute(op); err != nil {
		return err
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	return removed(classify(op, attachinterfaces.Delete(rctx, c.compute, serverID, portID).ExtractErr()))
}
