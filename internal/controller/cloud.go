package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// Cloud is what the controller needs of OpenStack. *openstack.Client is one;
// tests may wrap it to count or break calls.
type Cloud interface {
	openstack.PortCreator
	openstack.PortReader
	openstack.PortDeleter
	openstack.AddressPairUpdater
	openstack.NetworkReader
	openstack.TrunkClient
	openstack.ServerReader
	openstack.InterfaceAttacher
}

var _ Cloud = (*openstack.Client)(nil)

// Tags on every port the controller creates. Neutron is the source of truth:
// from these alone the controller (and its garbage collector) can find, after
// any crash, every port it made, whose it is, and how it was wired.
const (
	tagPrefixCluster = "kuryr-cluster="
	tagPrefixPod     = "kuryr-pod="
	tagPrefixIfName  = "kuryr-ifname="
	// tagPrefixParent marks a nested-macvlan port with the VM port whose
	// allowed address pairs carry it.
	tagPrefixParent = "kuryr-parent="
	// tagPrefixTrunk marks a nested-vlan port with the trunk it is (to be) a
	// subport of. Neutron itself marks subports only once an agent binds
	// them (device_owner trunk:subport), so the tag is what release trusts.
	tagPrefixTrunk = "kuryr-trunk="
)

// DeviceOwnerKuryr marks nested-vlan and nested-macvlan ports (kuryr's convention).
const DeviceOwnerKuryr = "compute:kuryr"

func clusterTag(clusterID string) string { return tagPrefixCluster + clusterID }
func podTag(uid types.UID) string        { return tagPrefixPod + string(uid) }

// tagValue returns the value of the first tag with prefix, or "".
func tagValue(tags []string, prefix string) string {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, prefix); ok {
			return v
		}
	}
	return ""
}

// portName is readable in `openstack port list`.
func portName(namespace, pod, ifName string) string {
	n := fmt.Sprintf("kuryr-%s-%s-%s", namespace, pod, ifName)
	if len(n) > 255 {
		n = n[:255]
	}
	return n
}

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
