package controller

import (
	"context"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// quickRetry absorbs a transient blip (a 503, a dropped connection) inside
// one reconcile, so that a pod's progress does not wait for a requeue.
// Longer trouble is left to the work queue's backoff.
var quickRetry = openstack.Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Factor: 2, Jitter: 0.2, Attempts: 3}

// retryingCloud retries the calls that are safe to repeat (reads, deletes,
// removals) on transient errors. Creations, attachments and additions are
// not retried here: after a lost answer the reconciler looks the result up
// (by tag, on the trunk, on the port) before trying again, so nothing is
// made twice.
type retryingCloud struct {
	Cloud
}

var _ Cloud = retryingCloud{}

func retry1[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var out T
	err := openstack.Retry(ctx, quickRetry, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	})
	return out, err
}

func (c retryingCloud) GetPort(ctx context.Context, id string) (openstack.Port, error) {
	return retry1(ctx, func(ctx context.Context) (openstack.Port, error) { return c.Cloud.GetPort(ctx, id) })
}

func (c retryingCloud) ListPorts(ctx context.Context, f openstack.PortFilter) ([]openstack.Port, error) {
	return retry1(ctx, func(ctx context.Context) ([]openstack.Port, error) { return c.Cloud.ListPorts(ctx, f) })
}

func (c retryingCloud) DeletePort(ctx context.Context, id string) error {
	return openstack.Retry(ctx, quickRetry, func(ctx context.Context) error { return c.Cloud.DeletePort(ctx, id) })
}

func (c retryingCloud) GetNetwork(ctx context.Context, id string) (openstack.Network, error) {
	return retry1(ctx, func(ctx context.Context) (openstack.Network, error) { return c.Cloud.GetNetwork(ctx, id) })
}

func (c retryingCloud) GetSubnet(ctx context.Context, id string) (openstack.Subnet, error) {
	return retry1(ctx, func(ctx context.Context) (openstack.Subnet, error) { return c.Cloud.GetSubnet(ctx, id) })
}

func (c retryingCloud) ListSubports(ctx context.Context, id string) ([]openstack.Subport, error) {
	return retry1(ctx, func(ctx context.Context) ([]openstack.Subport, error) { return c.Cloud.ListSubports(ctx, id) })
}

func (c retryingCloud) RemoveSubports(ctx context.Context, id string, portIDs []string) (openstack.Trunk, error) {
	return retry1(ctx, func(ctx context.Context) (openstack.Trunk, error) { return c.Cloud.RemoveSubports(ctx, id, portIDs) })
}

func (c retryingCloud) GetServer(ctx context.Context, id string) (openstack.Server, error) {
	return retry1(ctx, func(ctx context.Context) (openstack.Server, error) { return c.Cloud.GetServer(ctx, id) })
}

func (c retryingCloud) GetInterface(ctx context.Context, serverID, portID string) (openstack.Interface, error) {
	return retry1(ctx, func(ctx context.Context) (openstack.Interface, error) {
		return c.Cloud.GetInterface(ctx, serverID, portID)
	})
}

func (c retryingCloud) DetachInterface(ctx context.Context, serverID, portID string) error {
	return openstack.Retry(ctx, quickRetry, func(ctx context.Context) error { return c.Cloud.DetachInterface(ctx, serverID, portID) })
}
