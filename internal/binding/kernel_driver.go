package binding

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// KernelOptions say where the VM's NIC is, for the VLAN and MACVLAN drivers.
type KernelOptions struct {
	// ParentNetns is the network namespace holding the VM's NIC ("" is the
	// caller's own, as on a real node).
	ParentNetns string
	// Parent names the VM's NIC. Attach calls it each time; it may cache.
	// An error it returns is wrapped as it is (a CNI error keeps its code).
	Parent func(ctx context.Context) (string, error)
}

// kernelDriver is the Driver of one kernelKind: it keeps the checkpoint of
// each attachment (the pod netns, which Detach needs) around the link-level
// work of kernel.go.
type kernelDriver struct {
	kind  kernelKind
	store Checkpoints
	opts  KernelOptions
}

// link is the link-level request for req (the parent is set by Attach).
func (k *kernelDriver) link(req Request) linkRequest {
	return linkRequest{
		Netns: req.Netns, ParentNetns: k.opts.ParentNetns, IfName: req.IfName,
		MAC: req.MAC, MTU: req.MTU, IPs: req.IPs, Gateway: req.Gateway, Routes: req.Routes,
		DefaultRoute: req.DefaultRoute, VLANID: req.VLANID,
	}
}

// Attach creates the interface in the pod (see Request); on error it
// leaves nothing behind but the checkpoint. A retried ADD (a checkpoint
// exists) keeps an interface that is right and redoes one that is not; the
// checkpoint is written before the link is made, so that a DEL after a
// crash knows what to remove.
func (k *kernelDriver) Attach(ctx context.Context, req Request) (Result, error) {
	key := checkpoint.Key{ContainerID: req.ContainerID, IfName: req.IfName}
	if err := checkpoint.ValidateKey(key); err != nil {
		return Result{}, fmt.Errorf("%s attach: %w", k.kind.name, err)
	}
	lr := k.link(req)
	rec, err := k.store.Get(req.ContainerID, req.IfName)
	switch {
	case err == nil:
		if k.kind.check(ctx, lr) == nil {
			logr.FromContextOrDiscard(ctx).V(1).Info("retried attach, interface already right", "container", req.ContainerID, "ifname", req.IfName)
			return Result{}, nil
		}
		if err := k.kind.detach(ctx, rec.NetNS, req.IfName); err != nil {
			return Result{}, fmt.Errorf("%s attach %s: remove the previous attempt: %w", k.kind.name, key, err)
		}
	case !errors.Is(err, checkpoint.ErrNotFound):
		return Result{}, fmt.Errorf("%s attach %s: %w", k.kind.name, key, err)
	}
	if k.opts.Parent == nil {
		return Result{}, fmt.Errorf("%s attach %s: no parent link configured", k.kind.name, key)
	}
	if lr.Parent, err = k.opts.Parent(ctx); err != nil {
		return Result{}, fmt.Errorf("%s attach %s: %w", k.kind.name, key, err)
	}
	rec = checkpoint.Record{ContainerID: req.ContainerID, IfName: req.IfName, Kind: k.kind.name,
		MAC: macString(req), NetNS: req.Netns, PortID: req.PortID, Network: req.CNINetwork, PodUID: req.PodUID}
	if k.kind.extra != nil {
		rec.Extra = k.kind.extra(lr)
	}
	if err := k.store.Put(rec); err != nil {
		return Result{}, fmt.Errorf("%s attach: %w", k.kind.name, err)
	}
	if _, err := k.kind.attach(ctx, lr); err != nil {
		return Result{}, err
	}
	return Result{}, nil
}

// Check verifies the interface is still as Attach made it (for VLAN, tag
// included).
func (k *kernelDriver) Check(ctx context.Context, req Request) error {
	return k.kind.check(ctx, k.link(req))
}

// Detach removes the interface named in the checkpoint, then the
// checkpoint; nothing there, or the netns gone, is a success.
func (k *kernelDriver) Detach(ctx context.Context, containerID, ifName string) error {
	key := checkpoint.Key{ContainerID: containerID, IfName: ifName}
	rec, err := k.store.Get(containerID, ifName)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s detach %s: %w", k.kind.name, key, err)
	}
	if rec.Kind != k.kind.name {
		return fmt.Errorf("%s detach %s: the checkpoint is of a %s attachment", k.kind.name, key, rec.Kind)
	}
	if err := k.kind.detach(ctx, rec.NetNS, ifName); err != nil {
		return fmt.Errorf("remove %s from %s: %w", ifName, rec.NetNS, err)
	}
	if err := k.store.Delete(containerID, ifName); err != nil {
		return fmt.Errorf("%s detach: %w", k.kind.name, err)
	}
	return nil
}

// macString is the request's MAC in the kernel's form, "" when none.
func macString(req Request) string {
	if req.MAC == nil {
		return ""
	}
	return req.MAC.String()
}
