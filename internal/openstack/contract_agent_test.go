package openstack

import (
	"context"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// portView is what the controller relies on in a port once the cloud's L2
// agent (and Nova) have acted: its status, owner, device and host, with
// IDs and hosts replaced by the role they play ("<trunk>", "<server>",
// "<node host>", "<server host>") so that two clouds compare.
type portView struct {
	Status, DeviceOwner, DeviceID, Host string
}

// agentHooks stand in for what a deployed cloud does on its own: nil
// fields mean the cloud does it by itself (the simulation in agent mode).
type agentHooks struct {
	// plugged: the agent has wired port id (it turns ACTIVE).
	plugged func(t *testing.T, id string)
	// wireTrunk: the agent binds the subports of trunk id.
	wireTrunk func(t *testing.T, id string)
	// unwired: the agent has unwired port id, a subport taken off its
	// trunk, and reports its device gone (it turns DOWN).
	unwired func(t *testing.T, id string)
}

// wantAgentViews is what every controller test assumes of a cloud with an
// agent: a bound trunk parent ACTIVE; its subports ACTIVE, device_owner
// trunk:subport, on the parent's host, device_id untouched (the trunk RPC
// sets host and owner only); a port Nova attached ACTIVE, compute:nova, the
// server's, on the server's host; a subport taken off its trunk DOWN, its
// owner and host as the agent left them (Neutron's remove_subports changes
// nothing on the port, and the agent only unwires it and reports it down).
var wantAgentViews = map[string]portView{
	"parent":   {Status: PortStatusActive, Host: "<node host>"},
	"subport":  {Status: PortStatusActive, DeviceOwner: "trunk:subport", Host: "<node host>"},
	"removed":  {Status: PortStatusDown, DeviceOwner: "trunk:subport", Host: "<node host>"},
	"attached": {Status: PortStatusActive, DeviceOwner: "compute:nova", DeviceID: "<server>", Host: "<server host>"},
}

// runAgentContract makes a node VM's trunk parent bound to a host, two
// subports (the two must agree; then one is taken off the trunk), and a
// port Nova hot-attaches, and returns each one's view. It fails when a
// call fails.
func runAgentContract(t *testing.T, tg contractTarget, hooks agentHooks) map[string]portView {
	t.Helper()
	ctx := context.Background()
	c := tg.client
	f := newFixture(t, tg, "10.86.0.0/24")
	const nodeHost = "node-host-1"
	parent, trunkID := newTrunk(t, tg, f, f.subnetID, "agent-trunk")
	// A trunk first, then the parent's binding (else 409).
	rawCall(t, tg, "PUT", "ports/"+parent.ID, map[string]any{"port": map[string]any{"binding:host_id": nodeHost}}, 200)
	// Neutron keeps a trunk whose parent is bound (409 TrunkInUse).
	t.Cleanup(func() {
		rawCall(t, tg, "PUT", "ports/"+parent.ID, map[string]any{"port": map[string]any{"binding:host_id": ""}}, 200)
	})
	if hooks.plugged != nil {
		hooks.plugged(t, parent.ID)
	}
	subs, err := c.CreatePorts(ctx, []PortSpec{{NetworkID: f.netID, Tags: []string{f.tag}}, {NetworkID: f.netID, Tags: []string{f.tag}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		deleteAfter(t, tg, s.ID)
	}
	if _, err := c.AddSubports(ctx, trunkID, []Subport{{PortID: subs[0].ID, SegmentationID: 201}, {PortID: subs[1].ID, SegmentationID: 202}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The run takes subs[1] off itself; a failed run may not have.
		left, err := c.ListSubports(context.Background(), trunkID)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		var ids []string
		for _, sp := range left {
			if sp.PortID == subs[0].ID || sp.PortID == subs[1].ID {
				ids = append(ids, sp.PortID)
			}
		}
		if len(ids) == 0 {
			return
		}
		if _, err := c.RemoveSubports(context.Background(), trunkID, ids); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if hooks.wireTrunk != nil {
		hooks.wireTrunk(t, trunkID)
	}

	serverID := tg.seedServer(t, f.subnetID)
	srv, err := c.GetServer(ctx, serverID)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{trunkID: "<trunk>", serverID: "<server>", nodeHost: "<node host>", srv.Host: "<server host>"}
	view := func(id string) portView {
		t.Helper()
		p, err := c.GetPort(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		role := func(s string) string {
			if r, ok := roles[s]; ok {
				return r
			}
			return s
		}
		return portView{Status: p.Status, DeviceOwner: p.DeviceOwner, DeviceID: role(p.DeviceID), Host: role(p.HostID)}
	}
	att, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, Tags: []string{f.tag}})
	if err != nil {
		t.Fatal(err)
	}
	deleteAfter(t, tg, att.ID)
	if _, err := c.AttachInterface(ctx, serverID, att.ID); err != nil {
		t.Fatal(err)
	}
	out := map[string]portView{"parent": view(parent.ID), "subport": view(subs[0].ID), "attached": view(att.ID)}
	if other := view(subs[1].ID); other != out["subport"] {
		t.Errorf("the two subports differ: %+v and %+v", out["subport"], other)
	}
	if _, err := c.RemoveSubports(ctx, trunkID, []string{subs[1].ID}); err != nil {
		t.Fatal(err)
	}
	if hooks.unwired != nil {
		hooks.unwired(t, subs[1].ID)
	}
	out["removed"] = view(subs[1].ID)
	if err := c.DetachInterface(ctx, serverID, att.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for p, err := c.GetPort(ctx, att.ID); err == nil && p.DeviceID != "" && time.Now().Before(deadline); p, err = c.GetPort(ctx, att.ID) {
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

func checkAgentViews(t *testing.T, got map[string]portView) {
	t.Helper()
	for role, want := range wantAgentViews {
		if got[role] != want {
			t.Errorf("%s port: %+v, want %+v", role, got[role], want)
		}
	}
}

// TestContractAgentModeCloudsim: the simulation in agent mode (what the
// controller tests and the all-in-one run on) shows ports as a cloud with
// an L2 agent does. TestContractAgentModeNeutron holds real Neutron to the
// same views.
func TestContractAgentModeCloudsim(t *testing.T) {
	t.Parallel()
	tg, _ := simTargetWith(t, cloudsim.Options{})
	checkAgentViews(t, runAgentContract(t, tg, agentHooks{}))
}
