package controller

import (
	"context"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// limitedCloud lets at most cap(sem) writes to the cloud be in flight at
// once (Options.MaxCloudWrites), pool refills and pods together, so that a
// burst of pods cannot pile hundreds of creates onto a struggling Neutron.
// Reads are not bounded: they are cheap and what recovers the state.
type limitedCloud struct {
	Cloud
	sem chan struct{}
}

// limitWrites wraps c; max 0 means no bound.
func limitWrites(c Cloud, max int) Cloud {
	if max <= 0 {
		return c
	}
	return limitedCloud{Cloud: c, sem: make(chan struct{}, max)}
}

var _ Cloud = limitedCloud{}

// do runs fn holding one write slot, waiting for one as long as ctx lives.
func (c limitedCloud) do(ctx context.Context, fn func() error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	return fn()
}

func limited[T any](ctx context.Context, c limitedCloud, fn func() (T, error)) (T, error) {
	var out T
	err := c.do(ctx, func() error {
		var err error
		out, err = fn()
		return err
	})
	return out, err
}

func (c limitedCloud) CreatePort(ctx context.Context, s openstack.PortSpec) (openstack.Port, error) {
	return limited(ctx, c, func() (openstack.Port, error) { return c.Cloud.CreatePort(ctx, s) })
}

func (c limitedCloud) CreatePorts(ctx context.Context, s []openstack.PortSpec) ([]openstack.Port, error) {
	return limited(ctx, c, func() ([]openstack.Port, error) { return c.Cloud.CreatePorts(ctx, s) })
}

func (c limitedCloud) DeletePort(ctx context.Context, id string) error {
	return c.do(ctx, func() error { return c.Cloud.DeletePort(ctx, id) })
}

func (c limitedCloud) ReplacePortTags(ctx context.Context, id string, tags []string) ([]string, error) {
	return limited(ctx, c, func() ([]string, error) { return c.Cloud.ReplacePortTags(ctx, id, tags) })
}

func (c limitedCloud) UpdateAllowedAddressPairs(ctx context.Context, id string, pairs []openstack.AddressPair, rev int) (openstack.Port, error) {
	return limited(ctx, c, func() (openstack.Port, error) { return c.Cloud.UpdateAllowedAddressPairs(ctx, id, pairs, rev) })
}

func (c limitedCloud) AddSubports(ctx context.Context, id string, subs []openstack.Subport) (openstack.Trunk, error) {
	return limited(ctx, c, func() (openstack.Trunk, error) { return c.Cloud.AddSubports(ctx, id, subs) })
}

func (c limitedCloud) RemoveSubports(ctx context.Context, id string, portIDs []string) (openstack.Trunk, error) {
	return limited(ctx, c, func() (openstack.Trunk, error) { return c.Cloud.RemoveSubports(ctx, id, portIDs) })
}

func (c limitedCloud) AttachInterface(ctx context.Context, serverID, portID string) (openstack.Interface, error) {
	return limited(ctx, c, func() (openstack.Interface, error) { return c.Cloud.AttachInterface(ctx, serverID, portID) })
}

func (c limitedCloud) DetachInterface(ctx context.Context, serverID, portID string) error {
	return c.do(ctx, func() error { return c.Cloud.DetachInterface(ctx, serverID, portID) })
}
