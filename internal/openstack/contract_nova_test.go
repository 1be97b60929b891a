package openstack_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/neutrontest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
)

// noDevice is a hypervisor whose plugs and unplugs succeed at once: the
// contract is about the cloud's API, not a VM.
type noDevice struct{}

func (noDevice) Plug(context.Context, string, novastandin.Device) error   { return nil }
func (noDevice) Unplug(context.Context, string, novastandin.Device) error { return nil }

var serverSeq atomic.Int64

// realNeutron starts (or attaches to) a real neutron-server, a client of it
// and the Nova stand-in binding ports in it; with agent, Nova's attaches
// wait for the L2 agent stand-in, as a deployed Nova waits for
// network-vif-plugged. Skips loudly when neutron-server is not installed;
// fails instead under KURYR_TEST_NEUTRON=1 (CI).
func realNeutron(t *testing.T, agent bool) (*neutrontest.Server, *openstack.Client, openstack.ContractNova) {
	t.Helper()
	srv := neutrontest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	neutron, err := novastandin.NewNeutronClient(ctx, srv.URL, srv.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	nova := novastandin.New(neutron, testr.New(t))
	if agent {
		nova.SetAgent(neutrontest.Agent{Server: srv})
	}
	if err := nova.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nova.Close)
	c, err := openstack.New(ctx, openstack.Config{NeutronURL: srv.URL, NovaURL: nova.URL(), ProjectID: srv.ProjectID, RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	seed := func(t *testing.T, subnetID string) string {
		t.Helper()
		n := serverSeq.Add(1)
		id := fmt.Sprintf("6f1c2b9e-0000-4000-8000-%012d", time.Now().UnixNano()%1e9*1000+n)
		p, err := c.CreatePort(context.Background(), openstack.PortSpec{NetworkID: networkOf(t, c, subnetID), SubnetID: subnetID,
			Name: "server-port", DeviceID: id, DeviceOwner: novastandin.DeviceOwner})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.DeletePort(context.Background(), p.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		nova.AddServer(novastandin.Server{ID: id, Name: fmt.Sprint("node-", n), Host: fmt.Sprint("compute-", n), Hotplug: noDevice{}})
		return id
	}
	return srv, c, seed
}

func networkOf(t *testing.T, c *openstack.Client, subnetID string) string {
	t.Helper()
	s, err := c.GetSubnet(context.Background(), subnetID)
	if err != nil {
		t.Fatal(err)
	}
	return s.NetworkID
}

// TestContractNeutron runs the whole contract suite against a real
// neutron-server in noauth mode (hack/neutron, or the one KURYR_NEUTRON_URL
// names), its Nova cases against the Nova stand-in binding ports in that
// Neutron, with the L2 agent stand-in (ports turn ACTIVE when wired).
func TestContractNeutron(t *testing.T) {
	srv, c, nova := realNeutron(t, true)
	openstack.RunContract(t, c, srv.ProjectID, nova)
}

// TestContractAgentModeNeutron: real Neutron, driven as an L2 agent drives
// it (the agent stand-in: neutrontest.Agent) and with Nova's attach (the
// stand-in), shows the ports the way every controller test assumes (the
// simulation in agent mode): a bound trunk parent ACTIVE, subports ACTIVE
// as trunk:subport on the parent's host, a subport taken off the trunk
// DOWN and still trunk:subport on that host, an attached port ACTIVE and
// compute:nova on the server's host; field by field the same as the
// simulation's.
func TestContractAgentModeNeutron(t *testing.T) {
	srv, c, nova := realNeutron(t, true)
	agent := neutrontest.Agent{Server: srv}
	hooks := openstack.NewAgentHooks(
		func(t *testing.T, id string) {
			if err := agent.Plugged(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		},
		func(t *testing.T, id string) {
			if err := agent.WireTrunk(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		},
		func(t *testing.T, id string) {
			if err := agent.Unplugged(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		})
	real := openstack.RunAgentContract(t, c, srv.ProjectID, nova, hooks)
	sim := openstack.SimAgentViews(t)
	for role, r := range real {
		if s := sim[role]; s != r {
			t.Errorf("%s port: real Neutron %+v, simulation %+v", role, r, s)
		}
	}
}
