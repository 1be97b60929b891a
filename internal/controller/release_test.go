package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// recordingCloud records the calls release makes. Calls it does not
// implement panic (the embedded nil Cloud): release must not make them.
type recordingCloud struct {
	Cloud
	mu     sync.Mutex
	calls  []string
	parent openstack.Port // the VM port whose allowed address pairs nested-macvlan edits
}

func (c *recordingCloud) record(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, fmt.Sprintf(format, args...))
}

func (c *recordingCloud) RemoveSubports(_ context.Context, id string, portIDs []string) (openstack.Trunk, error) {
	c.record("remove %v from trunk %s", portIDs, id)
	return openstack.Trunk{ID: id}, nil
}

func (c *recordingCloud) GetPort(_ context.Context, id string) (openstack.Port, error) {
	if id == c.parent.ID {
		return c.parent, nil
	}
	return openstack.Port{ID: id}, nil // detached: no device_id
}

func (c *recordingCloud) UpdateAllowedAddressPairs(_ context.Context, id string, pairs []openstack.AddressPair, _ int) (openstack.Port, error) {
	c.record("set %d address pairs on %s", len(pairs), id)
	return openstack.Port{ID: id, AllowedAddressPairs: pairs}, nil
}

func (c *recordingCloud) DetachInterface(_ context.Context, serverID, portID string) error {
	c.record("detach %s from %s", portID, serverID)
	return nil
}

func (c *recordingCloud) DeletePort(_ context.Context, id string) error {
	c.record("delete %s", id)
	return nil
}

// TestReleaseDispatchesOnTheRecordedDriver: release undoes each port's
// wiring by the driver its tags record (schema v1), or infers for a port
// of the previous schema, and then deletes it.
func TestReleaseDispatchesOnTheRecordedDriver(t *testing.T) {
	t.Parallel()
	v1 := func(d v1alpha1.Driver, extra ...string) []string {
		return append(append(portTags(clusterIdentity{name: "c", uid: "c-uid"}, d), ownerTags("u", "eth0")...), extra...)
	}
	v0 := func(extra ...string) []string {
		return append([]string{clusterTag("c"), podTag("u"), tagPrefixIfName + "eth0"}, extra...)
	}
	cases := []struct {
		name string
		port openstack.Port
		want []string
	}{
		{"v1 nested-vlan", openstack.Port{ID: "p", Tags: v1(v1alpha1.DriverNestedVLAN, "kuryr-trunk=t1")},
			[]string{"remove [p] from trunk t1", "delete p"}},
		{"v0 nested-vlan", openstack.Port{ID: "p", Tags: v0("kuryr-trunk=t1"), DeviceOwner: DeviceOwnerKuryr},
			[]string{"remove [p] from trunk t1", "delete p"}},
		{"v1 nested-macvlan", openstack.Port{ID: "p", MACAddress: "fa:16:3e:00:00:01", Tags: v1(v1alpha1.DriverNestedMACVLAN, "kuryr-parent=vm")},
			[]string{"set 0 address pairs on vm", "delete p"}},
		{"v0 nested-macvlan", openstack.Port{ID: "p", MACAddress: "fa:16:3e:00:00:01", Tags: v0("kuryr-parent=vm"), DeviceOwner: DeviceOwnerKuryr},
			[]string{"set 0 address pairs on vm", "delete p"}},
		{"v1 nested-dpdk attached", openstack.Port{ID: "p", Tags: v1(v1alpha1.DriverNestedDPDK), DeviceID: "srv", DeviceOwner: "compute:nova"},
			[]string{"detach p from srv", "delete p"}},
		{"v0 nested-dpdk attached", openstack.Port{ID: "p", Tags: v0(), DeviceID: "srv", DeviceOwner: "compute:nova"},
			[]string{"detach p from srv", "delete p"}},
		{"v1 nested-dpdk never attached", openstack.Port{ID: "p", Tags: v1(v1alpha1.DriverNestedDPDK)}, []string{"delete p"}},
		{"v0 never wired", openstack.Port{ID: "p", Tags: v0()}, []string{"delete p"}},
		{"v1 pool port (no pod)", openstack.Port{ID: "p", Tags: portTags(clusterIdentity{name: "c", uid: "c-uid"}, v1alpha1.DriverNestedDPDK), DeviceID: "srv"},
			[]string{"detach p from srv", "delete p"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cloud := &recordingCloud{parent: openstack.Port{ID: "vm", AllowedAddressPairs: []openstack.AddressPair{{IPAddress: "10.0.0.9", MACAddress: "FA:16:3E:00:00:01"}}}}
			m := newMetrics(nil)
			r := &PodReconciler{cloud: cloud, metrics: m, drivers: newDrivers(cloud, newNodes(cloud, nil), nil, nil, m)}
			if err := r.releasePort(context.Background(), c.port); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cloud.calls, c.want) {
				t.Fatalf("calls %q, want %q", cloud.calls, c.want)
			}
		})
	}
}

// TestReleaseRefusesPortsItCannotRead: a port whose tags name a schema or a
// driver this controller does not know is left alone, with an error naming
// it, rather than deleted with its wiring in place.
func TestReleaseRefusesPortsItCannotRead(t *testing.T) {
	t.Parallel()
	for _, tags := range [][]string{
		{clusterTag("c"), tagPrefixSchema + "v2", tagPrefixDriver + "nested-vlan"},
		{clusterTag("c"), tagPrefixSchema + tagSchemaV1, tagPrefixDriver + "nested-sriov"},
	} {
		cloud := &recordingCloud{}
		m := newMetrics(nil)
		r := &PodReconciler{cloud: cloud, metrics: m, drivers: newDrivers(cloud, newNodes(cloud, nil), nil, nil, m)}
		err := r.releasePort(context.Background(), openstack.Port{ID: "p9", Tags: tags})
		if err == nil || !strings.Contains(err.Error(), "p9") || len(cloud.calls) != 0 {
			t.Errorf("tags %v: error %v, calls %q; want an error naming p9 and no call", tags, err, cloud.calls)
		}
	}
}

// TestReleasesPortsOfThePreviousTagSchema: ports made and wired by the
// previous version (tags without kuryr-driver and kuryr-tags: a trunk
// subport, an allowed address pair on the VM's port, a Nova attachment) are
// unwired and deleted by their pod's release, in the simulated cloud.
func TestReleasesPortsOfThePreviousTagSchema(t *testing.T) {
	f := newFixture(t, 1)
	srv := f.servers[f.ns+"-node-0"]
	uid := "0ld-pod-uid"
	v0 := func(subnet cloudsim.Subnet, ifName, owner string, extra ...string) openstack.Port {
		t.Helper()
		p, err := f.cloud.CreatePort(f.ctx, openstack.PortSpec{NetworkID: subnet.NetworkID, SubnetID: subnet.ID, DeviceOwner: owner,
			Tags: append([]string{clusterTag(f.clusterID), tagPrefixPod + uid, tagPrefixIfName + ifName}, extra...)})
		must(t, err)
		return p
	}
	vlan := v0(f.mgmtNet, "eth0", DeviceOwnerKuryr, tagPrefixTrunk+srv.TrunkID)
	_, err := f.cloud.AddSubports(f.ctx, srv.TrunkID, []openstack.Subport{{PortID: vlan.ID, SegmentationType: "vlan", SegmentationID: 42}})
	must(t, err)
	mv := v0(f.mgmtNet, "net1", DeviceOwnerKuryr, tagPrefixParent+srv.ParentPort.ID)
	parent, err := f.cloud.GetPort(f.ctx, srv.ParentPort.ID)
	must(t, err)
	_, err = f.cloud.UpdateAllowedAddressPairs(f.ctx, parent.ID,
		[]openstack.AddressPair{{IPAddress: mv.FixedIPs[0].IPAddress, MACAddress: mv.MACAddress}}, parent.RevisionNumber)
	must(t, err)
	dp := v0(f.dpNet, "net2", "")
	_, err = f.cloud.AttachInterface(f.ctx, srv.Server.ID, dp.ID)
	must(t, err)
	if left := f.leftovers(); !strings.Contains(left, "subport "+vlan.ID) || !strings.Contains(left, "attachment "+dp.ID) {
		t.Fatalf("setup did not wire the ports: %s", left)
	}

	r := NewPodReconciler(f.c, f.cloud, nil, f.opts, nil)
	f.eventually(20*time.Second, "the old pod's ports released", func() (bool, string) {
		if err := r.releasePod(f.ctx, "0ld-pod-uid", false); err != nil {
			return false, err.Error()
		}
		return f.leftovers() == "", f.leftovers()
	})
	got, ok := f.sim.Port(srv.ParentPort.ID)
	if !ok {
		t.Fatalf("the VM's port %s not found: its allowed address pairs cannot be counted", srv.ParentPort.ID)
	}
	if len(got.AllowedAddressPairs) != 0 {
		t.Fatalf("the VM's port still allows %+v", got.AllowedAddressPairs)
	}
}
