package openstack

import (
	"context"
	"fmt"
)

// novaRequest is request for Nova, which may not be configured.
func novaRequest[T any](ctx context.Context, c *Client, op, key string,
	send sender, complete func(*T) bool) (T, error) {
	if err := c.needCompute(op); err != nil {
		var zero T
		return zero, err
	}
	return request(ctx, c, op, key, key, send, complete)
}

// GetServer returns Nova server id.
func (c *Client) GetServer(ctx context.Context, id string) (Server, error) {
	return novaRequest(ctx, c, "get server "+id, "server",
		call(c.compute, "GET", []string{"servers", id}, nil, nil, 200, 203), hasID[Server])
}

// AttachInterface asks Nova to attach port portID to server serverID (a
// hot-plugged NIC in the VM). The port must exist and be unbound.
func (c *Client) AttachInterface(ctx context.Context, serverID, portID string) (Interface, error) {
	op := fmt.Sprintf("attach port %s to server %s", portID, serverID)
	body := map[string]any{"interfaceAttachment": map[string]string{"port_id": portID}}
	return novaRequest(ctx, c, op, "interfaceAttachment",
		call(c.compute, "POST", []string{"servers", serverID, "os-interface"}, body, nil, 200), hasID[Interface])
}

// ListInterfaces returns the interfaces attached to server serverID.
func (c *Client) ListInterfaces(ctx context.Context, serverID string) ([]Interface, error) {
	// Nova answers the whole list at once (os-interface has no pages).
	return novaRequest(ctx, c, "list interfaces of server "+serverID, "interfaceAttachments",
		call(c.compute, "GET", []string{"servers", serverID, "os-interface"}, nil, nil), present[[]Interface])
}

// GetInterface returns the attachment of port portID to server serverID.
func (c *Client) GetInterface(ctx context.Context, serverID, portID string) (Interface, error) {
	op := fmt.Sprintf("get interface %s of server %s", portID, serverID)
	return novaRequest(ctx, c, op, "interfaceAttachment",
		call(c.compute, "GET", []string{"servers", serverID, "os-interface", portID}, nil, nil), hasID[Interface])
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
	return removed(classify(op, call(c.compute, "DELETE", []string{"servers", serverID, "os-interface", portID}, nil, nil)(rctx, nil)))
}
