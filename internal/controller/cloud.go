package controller

import (
	"context"
	"sync"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// Cloud is what the controller needs of OpenStack. *openstack.Client is one;
// tests may wrap it to count or break calls.
type Cloud interface {
	openstack.PortCreator
	openstack.PortReader
	openstack.PortDeleter
	openstack.PortTagger
	openstack.AddressPairUpdater
	openstack.NetworkReader
	openstack.TrunkClient
	openstack.ServerReader
	openstack.InterfaceAttacher
	openstack.Projecter
}

var _ Cloud = (*openstack.Client)(nil)

// netCache remembers subnets and networks, which do not change under us in
// ways that matter here (CIDR, gateway, network, MTU), so that a pod's path
// makes no call for them after the first pod on that network.
type netCache struct {
	cloud    openstack.NetworkReader
	mu       sync.Mutex
	subnets  map[string]openstack.Subnet
	networks map[string]openstack.Network
}

func newNetCache(c openstack.NetworkReader) *netCache {
	return &netCache{cloud: c, subnets: map[string]openstack.Subnet{}, networks: map[string]openstack.Network{}}
}

func (c *netCache) subnet(ctx context.Context, id string) (openstack.Subnet, error) {
	c.mu.Lock()
	s, ok := c.subnets[id]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := c.cloud.GetSubnet(ctx, id)
	if err != nil {
		return openstack.Subnet{}, err
	}
	c.mu.Lock()
	c.subnets[id] = s
	c.mu.Unlock()
	return s, nil
}

func (c *netCache) network(ctx context.Context, id string) (openstack.Network, error) {
	c.mu.Lock()
	n, ok := c.networks[id]
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := c.cloud.GetNetwork(ctx, id)
	if err != nil {
		return openstack.Network{}, err
	}
	c.mu.Lock()
	c.networks[id] = n
	c.mu.Unlock()
	return n, nil
}
