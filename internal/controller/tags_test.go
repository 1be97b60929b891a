package controller

import (
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestPortDriverOf reads the driver a port was wired with from its tags:
// schema v1 says it outright; the previous schema (no kuryr-tags, no
// kuryr-driver) is inferred from what its writer left on the port.
func TestPortDriverOf(t *testing.T) {
	t.Parallel()
	v1 := func(d string, extra ...string) []string {
		return append([]string{"kuryr-cluster=c", "kuryr-pod=u", "kuryr-ifname=eth0", "kuryr-tags=v1", "kuryr-driver=" + d}, extra...)
	}
	v0 := func(extra ...string) []string {
		return append([]string{"kuryr-cluster=c", "kuryr-pod=u", "kuryr-ifname=eth0"}, extra...)
	}
	cases := []struct {
		name    string
		port    openstack.Port
		want    v1alpha1.Driver
		wantErr bool
	}{
		{"v1 nested-vlan", openstack.Port{Tags: v1("nested-vlan", "kuryr-trunk=t1")}, v1alpha1.DriverNestedVLAN, false},
		{"v1 nested-macvlan", openstack.Port{Tags: v1("nested-macvlan", "kuryr-parent=vm")}, v1alpha1.DriverNestedMACVLAN, false},
		{"v1 nested-dpdk not attached yet", openstack.Port{Tags: v1("nested-dpdk")}, v1alpha1.DriverNestedDPDK, false},
		{"v1 nested-vlan made for a node without trunk", openstack.Port{Tags: v1("nested-vlan"), DeviceOwner: DeviceOwnerKuryr}, v1alpha1.DriverNestedVLAN, false},
		{"v1 pool port without owner", openstack.Port{Tags: []string{"kuryr-cluster=c", "kuryr-tags=v1", "kuryr-driver=nested-dpdk"}}, v1alpha1.DriverNestedDPDK, false},
		{"v1 without driver tag", openstack.Port{ID: "p1", Tags: v0("kuryr-tags=v1")}, "", true},
		{"newer schema", openstack.Port{ID: "p1", Tags: []string{"kuryr-cluster=c", "kuryr-tags=v2", "kuryr-driver=nested-vlan"}}, "", true},
		{"v0 nested-vlan", openstack.Port{Tags: v0("kuryr-trunk=t1"), DeviceOwner: DeviceOwnerKuryr}, v1alpha1.DriverNestedVLAN, false},
		{"v0 nested-macvlan", openstack.Port{Tags: v0("kuryr-parent=vm"), DeviceOwner: DeviceOwnerKuryr}, v1alpha1.DriverNestedMACVLAN, false},
		{"v0 nested-dpdk attached", openstack.Port{Tags: v0(), DeviceID: "srv", DeviceOwner: "compute:nova"}, v1alpha1.DriverNestedDPDK, false},
		{"v0 nested-dpdk not attached", openstack.Port{Tags: v0()}, "", false},
		{"v0 kuryr-owned with a device", openstack.Port{Tags: v0(), DeviceID: "srv", DeviceOwner: DeviceOwnerKuryr}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := portDriverOf(c.port)
			if got != c.want || (err != nil) != c.wantErr {
				t.Fatalf("portDriverOf(%v) = %q, %v; want %q, error %v", c.port.Tags, got, err, c.want, c.wantErr)
			}
		})
	}
}

// TestEveryDriverRecordsItselfOnItsPorts: the tags a port gets at creation
// (portTags, then the driver's prepare) read back as the driver that made
// it, for every driver in the registry.
func TestEveryDriverRecordsItselfOnItsPorts(t *testing.T) {
	t.Parallel()
	ds := newDrivers(nil, nil, nil, nil, newMetrics(nil))
	node := nodeInfo{Name: "n1", ServerID: "srv", ParentPortID: "vm", TrunkID: "t1"}
	for name, drv := range ds {
		spec := openstack.PortSpec{Tags: append(portTags(clusterIdentity{name: "c", uid: "c-uid"}, name), ownerTags("u", "eth0")...)}
		drv.prepare(node, &spec)
		got, err := portDriverOf(openstack.Port{ID: "p", Tags: spec.Tags, DeviceOwner: spec.DeviceOwner})
		if err != nil || got != name {
			t.Errorf("%s: port tagged %v reads as %q, %v", name, spec.Tags, got, err)
		}
		if tagValue(spec.Tags, tagPrefixCluster) != "c" || tagValue(spec.Tags, tagPrefixPod) != "u" || tagValue(spec.Tags, tagPrefixIfName) != "eth0" {
			t.Errorf("%s: tags %v lack the cluster, pod or interface", name, spec.Tags)
		}
	}
}

// TestRegistryHoldsEachKnownDriver: the registry has exactly the drivers the
// API accepts.
func TestRegistryHoldsEachKnownDriver(t *testing.T) {
	t.Parallel()
	ds := newDrivers(nil, nil, nil, nil, newMetrics(nil))
	// Every driver name the schema knows has a controller driver.
	for _, name := range netconf.Drivers() {
		d := v1alpha1.Driver(name)
		if _, err := ds.get(d); err != nil {
			t.Errorf("driver %s not in the registry: %v", d, err)
		}
	}
	for d := range ds {
		if !d.Valid() {
			t.Errorf("registry holds %q, which the API does not accept", d)
		}
	}
	if _, err := ds.get("nested-sriov"); err == nil || !isTerminal(err) {
		t.Errorf("unknown driver: %v, want a terminal error", err)
	}
}
