package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/neutrontest"
)

// neutronCall makes one raw Neutron request (what the controller's client
// cannot do: networks, subnets, trunks) and decodes the answer.
func neutronCall(t *testing.T, srv *neutrontest.Server, method, path string, body any, want int) map[string]any {
	t.Helper()
	var in bytes.Buffer
	if body != nil {
		must(t, json.NewEncoder(&in).Encode(body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+"/v2.0/"+path, &in)
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, resp.StatusCode, want, out)
	}
	return out
}

func idOf(m map[string]any, kind string) string {
	o, _ := m[kind].(map[string]any)
	id, _ := o["id"].(string)
	return id
}

// TestTagSchemaOnRealNeutron: on a real neutron-server, ports tagged as the
// controller tags them (schema v1, each driver's prepare) and a port of the
// previous schema are found by the pod's tags, read back as their drivers,
// and released by the recorded driver: the subport leaves the trunk, the
// address pair leaves the VM's port, and every port is deleted.
func TestTagSchemaOnRealNeutron(t *testing.T) {
	srv := neutrontest.New(t)
	ctx := context.Background()
	c, err := openstack.New(ctx, openstack.Config{NeutronURL: srv.URL, ProjectID: srv.ProjectID})
	must(t, err)
	with := func(m map[string]any) map[string]any { m["project_id"] = srv.ProjectID; return m }
	netID := idOf(neutronCall(t, srv, "POST", "networks", map[string]any{"network": with(map[string]any{"name": "tags"})}, 201), "network")
	t.Cleanup(func() { neutronCall(t, srv, "DELETE", "networks/"+netID, nil, 204) })
	subnetID := idOf(neutronCall(t, srv, "POST", "subnets", map[string]any{"subnet": with(map[string]any{
		"network_id": netID, "cidr": "10.97.0.0/24", "ip_version": 4, "name": "tags"})}, 201), "subnet")

	parent, err := c.CreatePort(ctx, openstack.PortSpec{NetworkID: netID, SubnetID: subnetID, Name: "vm-parent"})
	must(t, err)
	t.Cleanup(func() { must(t, c.DeletePort(ctx, parent.ID)) })
	trunkID := idOf(neutronCall(t, srv, "POST", "trunks", map[string]any{"trunk": with(map[string]any{"port_id": parent.ID, "name": "tags"})}, 201), "trunk")
	t.Cleanup(func() { neutronCall(t, srv, "DELETE", "trunks/"+trunkID, nil, 204) })
	node := nodeInfo{Name: "n1", ServerID: "srv-1", ParentPortID: parent.ID, TrunkID: trunkID}

	cluster, uid := fmt.Sprintf("cluster-%d", time.Now().UnixNano()), types.UID("pod-uid-1")
	opts := Defaults()
	opts.ClusterID = cluster
	r := NewPodReconciler(nil, c, nil, opts, nil)
	made := map[string]v1alpha1.Driver{}
	for i, d := range []v1alpha1.Driver{v1alpha1.DriverNestedVLAN, v1alpha1.DriverNestedMACVLAN, v1alpha1.DriverNestedDPDK} {
		drv, err := r.drivers.get(d)
		must(t, err)
		spec := openstack.PortSpec{NetworkID: netID, SubnetID: subnetID, Tags: append(portTags(r.cluster(), d), ownerTags(uid, fmt.Sprintf("net%d", i))...)}
		drv.prepare(node, &spec)
		p, err := c.CreatePort(ctx, spec)
		must(t, err)
		made[p.ID] = d
		if d == v1alpha1.DriverNestedDPDK {
			continue // no Nova here: a nested-dpdk port not attached yet
		}
		_, err = drv.wire(ctx, node, fmt.Sprintf("net%d", i), p)
		must(t, err)
	}
	old, err := c.CreatePort(ctx, openstack.PortSpec{NetworkID: netID, SubnetID: subnetID, DeviceOwner: DeviceOwnerKuryr,
		Tags: []string{clusterTag(cluster), podTag(uid), tagPrefixIfName + "eth0", tagPrefixTrunk + trunkID}})
	must(t, err)
	made[old.ID] = v1alpha1.DriverNestedVLAN
	_, err = c.AddSubports(ctx, trunkID, []openstack.Subport{{PortID: old.ID, SegmentationType: "vlan", SegmentationID: 3000}})
	must(t, err)

	ports, err := r.podPorts(ctx, uid)
	must(t, err)
	if len(ports) != len(made) {
		t.Fatalf("the pod's tags find %d ports, want %d", len(ports), len(made))
	}
	for _, p := range ports {
		if got, err := portDriverOf(p); err != nil || got != made[p.ID] {
			t.Errorf("port %s tagged %v reads as %q, %v; want %s", p.ID, p.Tags, got, err, made[p.ID])
		}
	}
	if subs, err := c.ListSubports(ctx, trunkID); err != nil || len(subs) != 2 {
		t.Fatalf("trunk subports before release %+v, %v; want the v1 and the v0 nested-vlan ports", subs, err)
	}
	if pp, err := c.GetPort(ctx, parent.ID); err != nil || len(pp.AllowedAddressPairs) != 1 {
		t.Fatalf("VM port pairs before release %+v, %v; want the nested-macvlan port's", pp.AllowedAddressPairs, err)
	}

	must(t, r.releasePod(ctx, uid, false))
	if left, err := r.podPorts(ctx, uid); err != nil || len(left) != 0 {
		t.Fatalf("after release the pod's tags still find %d ports, %v", len(left), err)
	}
	if subs, err := c.ListSubports(ctx, trunkID); err != nil || len(subs) != 0 {
		t.Fatalf("trunk subports after release %+v, %v", subs, err)
	}
	if pp, err := c.GetPort(ctx, parent.ID); err != nil || len(pp.AllowedAddressPairs) != 0 {
		t.Fatalf("VM port pairs after release %+v, %v", pp.AllowedAddressPairs, err)
	}
}
