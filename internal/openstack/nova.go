package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/attachinterfaces"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// GetServer returns Nova server id.
func (c *Client) GetServer(ctx context.Context, id string) (Server, error) {
	op := "get server " + id
	if err := c.needCompute(op); err != nil {
		return Server{}, err
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Server *Server `json:"server"`
	}
	if err := servers.Get(rctx, c.compute, id).Result.ExtractInto(&out); err != nil {
		return Server{}, classify(op, err)
	}
	if out.Server == nil || out.Server.ID == "" {
		return Server{}, malformed(op, "no server in the answer")
	}
	return *out.Server, nil
}

// AttachInterface asks Nova to attach port portID to server serverID (a
// hot-plugged NIC in the VM). The port must exist and be unbound.
func (c *Client) AttachInterface(ctx context.Context, serverID, portID string) (Interface, error) {
	op := fmt.Sprintf("attach port %s to server %s", portID, serverID)
	if err := c.needCompute(op); err != nil {
		return Interface{}, err
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Interface *Interface `json:"interfaceAttachment"`
	}
	err := attachinterfaces.Create(rctx, c.compute, serverID, attachinterfaces.CreateOpts{PortID: portID}).Result.ExtractInto(&out)
	if err != nil {
		return Interface{}, classify(op, err)
	}
	if out.Interface == nil || out.Interface.PortID == "" {
		return Interface{}, malformed(op, "no interfaceAttachment in the answer")
	}
	return *out.Interface, nil
}

// ListInterfaces returns the interfaces attached to server serverID.
func (c *Client) ListInterfaces(ctx context.Context, serverID string) ([]Interface, error) {
	op := "list interfaces of server " + serverID
	if err := c.needCompute(op); err != nil {
		return nil, err
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	page, err := attachinterfaces.List(c.compute, serverID).AllPages(rctx)
	if err != nil {
		return nil, classify(op, err)
	}
	var out struct {
		Interfaces *[]Interface `json:"interfaceAttachments"`
	}
	if err := page.(attachinterfaces.InterfacePage).Result.ExtractInto(&out); err != nil {
		return nil, classify(op, err)
	}
	if out.Interfaces == nil {
		return nil, malformed(op, "no interfaceAttachments in the answer")
	}
	return *out.Interfaces, nil
}

// GetInterface returns the attachment of port portID to server serverID.
func (c *Client) GetInterface(ctx context.Context, serverID, portID string) (Interface, error) {
	op := fmt.Sprintf("get interface %s of server %s", portID, serverID)
	if err := c.needCompute(op); err != nil {
		return Interface{}, err
	}
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	var out struct {
		Interface *Interface `json:"interfaceAttachment"`
	}
	if err := attachinterfaces.Get(rctx, c.compute, serverID, portID).Result.ExtractInto(&out); err != nil {
		return Interface{}, classify(op, err)
	}
	if out.Interface == nil || out.Interface.PortID == "" {
		return Interface{}, malformed(op, "no interfaceAttachment in the answer")
	}
	return *out.Interface, nil
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
	err := classify(op, attachinterfaces.Delete(rctx, c.compute, serverID, portID).ExtractErr())
	if isNotFound(err) {
		return nil
	}
	return err
}
