package vmenv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/neutrontest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
)

// NeutronCloud is a real neutron-server (internal/testing/neutrontest)
// holding a workers network with the node VM's port, the parent of a
// trunk, bound to the VM's host, and a pods network (for the primary CNI's
// eth0); the Nova stand-in serving the node VM's server (its attaches
// hot-plug through the given Hotplugger); the L2 agent stand-in wiring the
// trunk's subports as they are added; and the controller's client of both.
type NeutronCloud struct {
	Neutron *neutrontest.Server
	Nova    *novastandin.Nova
	Agent   neutrontest.Agent
	Client  *openstack.Client
	// ServerID is the node VM's Nova server, on compute host Host.
	ServerID, Host string
	// ParentPort is the VM's port (on Workers), the parent of TrunkID.
	ParentPort openstack.Port
	TrunkID    string
	// Workers and Pods are the networks' subnets (with their network IDs).
	Workers, Pods openstack.Subnet
}

// StartNeutronCloud starts real Neutron (neutrontest.New: skipped, or
// failed under KURYR_TEST_NEUTRON=1, without neutron-server) and the Nova
// stand-in, and creates in Neutron what a cloud holds for a booted node VM
// called node: its port with a fixed IP on the workers subnet,
// device_owner compute:nova, the parent of a trunk, then bound to the host
// (a trunk first: Neutron refuses a trunk on a bound port) and ACTIVE (the
// agent wired it). The agent stand-in wires the trunk's subports as they
// come until the test ends. Everything goes when the test ends.
func StartNeutronCloud(ctx context.Context, t *testing.T, node string, hp novastandin.Hotplugger) *NeutronCloud {
	t.Helper()
	srv := neutrontest.New(t)
	c := &NeutronCloud{Neutron: srv, Agent: neutrontest.Agent{Server: srv}, ServerID: newUUID(t), Host: "compute-" + node}
	c.Workers = c.subnet(ctx, t, "workers", "10.0.0.0/24")
	c.Pods = c.subnet(ctx, t, "pods", "10.4.0.0/24")

	neutron, err := novastandin.NewNeutronClient(ctx, srv.URL, srv.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	c.Nova = novastandin.New(neutron, testr.New(t))
	c.Nova.SetAgent(c.Agent)
	c.Nova.AddServer(novastandin.Server{ID: c.ServerID, Name: node, Host: c.Host, Hotplug: hp})
	if err := c.Nova.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Nova.Close)
	c.Client, err = openstack.New(ctx, openstack.Config{NeutronURL: srv.URL, NovaURL: c.Nova.URL(), ProjectID: srv.ProjectID,
		RequestTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	c.ParentPort, err = c.Client.CreatePort(ctx, openstack.PortSpec{NetworkID: c.Workers.NetworkID, SubnetID: c.Workers.ID,
		Name: node + "-port", DeviceID: c.ServerID, DeviceOwner: novastandin.DeviceOwner})
	if err != nil {
		t.Fatal(err)
	}
	c.cleanup(t, "DELETE", "/ports/"+c.ParentPort.ID, nil)
	var tr struct {
		Trunk openstack.Trunk `json:"trunk"`
	}
	if err := srv.Call(ctx, http.MethodPost, "/trunks", map[string]any{"trunk": map[string]any{
		"port_id": c.ParentPort.ID, "name": node + "-trunk", "project_id": srv.ProjectID}}, &tr); err != nil {
		t.Fatal(err)
	}
	c.TrunkID = tr.Trunk.ID
	c.cleanup(t, "DELETE", "/trunks/"+c.TrunkID, nil)
	if _, err := neutron.BindPort(ctx, c.ParentPort.ID, novastandin.Binding{DeviceID: c.ServerID,
		DeviceOwner: novastandin.DeviceOwner, HostID: c.Host}); err != nil {
		t.Fatal(err)
	}
	// Neutron keeps the trunk of a bound parent (409 TrunkInUse).
	c.cleanup(t, "PUT", "/ports/"+c.ParentPort.ID, map[string]any{"port": map[string]any{"binding:host_id": ""}})
	if err := c.Agent.Plugged(ctx, c.ParentPort.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent.WireTrunk(ctx, c.TrunkID); err != nil {
		t.Fatal(err)
	}
	if c.ParentPort, err = c.Client.GetPort(ctx, c.ParentPort.ID); err != nil {
		t.Fatal(err)
	}

	actx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Agent.KeepTrunkWired(actx, c.TrunkID, 200*time.Millisecond, func(err error) { t.Logf("agent stand-in: %v", err) })
	}()
	t.Cleanup(func() { stop(); wg.Wait() })
	return c
}

// subnet creates a network called name with an IPv4 subnet of cidr,
// deleted when the test ends.
func (c *NeutronCloud) subnet(ctx context.Context, t *testing.T, name, cidr string) openstack.Subnet {
	t.Helper()
	var nw struct {
		Network openstack.Network `json:"network"`
	}
	if err := c.Neutron.Call(ctx, http.MethodPost, "/networks", map[string]any{"network": map[string]any{
		"name": name, "project_id": c.Neutron.ProjectID}}, &nw); err != nil {
		t.Fatal(err)
	}
	c.cleanup(t, "DELETE", "/networks/"+nw.Network.ID, nil)
	var sn struct {
		Subnet openstack.Subnet `json:"subnet"`
	}
	if err := c.Neutron.Call(ctx, http.MethodPost, "/subnets", map[string]any{"subnet": map[string]any{
		"name": name, "network_id": nw.Network.ID, "cidr": cidr, "ip_version": 4, "project_id": c.Neutron.ProjectID}}, &sn); err != nil {
		t.Fatal(err)
	}
	return sn.Subnet
}

// cleanup sends a request to Neutron when the test ends (after what was
// registered later), failing the test if it fails.
func (c *NeutronCloud) cleanup(t *testing.T, method, path string, body any) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Neutron.Call(ctx, method, path, body, nil); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// OpenStack implements Cloud.
func (c *NeutronCloud) OpenStack() *openstack.Client { return c.Client }

// WorkerSubnetID implements Cloud.
func (c *NeutronCloud) WorkerSubnetID() string { return c.Workers.ID }

// PodSubnetID implements Cloud.
func (c *NeutronCloud) PodSubnetID() string { return c.Pods.ID }

// Leaks lists what pods left in Neutron: ports on the pods network and
// subports of the node's trunk. A failed lookup is an error, never "none".
func (c *NeutronCloud) Leaks(ctx context.Context) ([]string, error) {
	ports, err := c.Client.ListPorts(ctx, openstack.PortFilter{NetworkID: c.Pods.NetworkID})
	if err != nil {
		return nil, fmt.Errorf("list the ports of the pods network %s: %w", c.Pods.NetworkID, err)
	}
	subs, err := c.Client.ListSubports(ctx, c.TrunkID)
	if err != nil {
		return nil, fmt.Errorf("list the subports of trunk %s: %w", c.TrunkID, err)
	}
	var left []string
	for _, p := range ports {
		left = append(left, fmt.Sprintf("port %s (%s, %s, owner %q)", p.ID, p.Name, p.Status, p.DeviceOwner))
	}
	for _, s := range subs {
		left = append(left, fmt.Sprintf("subport %s (VLAN %d) of trunk %s", s.PortID, s.SegmentationID, c.TrunkID))
	}
	return left, nil
}

// PortGone says whether port id is gone from Neutron: false while it is
// there, an error when the lookup fails otherwise than with 404.
func (c *NeutronCloud) PortGone(ctx context.Context, id string) (bool, error) {
	_, err := c.Client.GetPort(ctx, id)
	switch {
	case errors.Is(err, openstack.ErrNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("look up port %s: %w", id, err)
	}
	return false, nil
}

// newUUID is a random (version 4) UUID, as Nova gives a server.
func newUUID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
