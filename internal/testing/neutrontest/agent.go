package neutrontest

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// TrunkSubportOwner is the device_owner Neutron's trunk service gives a
// subport once an agent has bound it.
const TrunkSubportOwner = "trunk:subport"

// Agent stands in for the L2 (Open vSwitch) agent of a compute host, which
// this standalone Neutron lacks, by making Neutron do what the agent's
// reports make it do:
//   - a bound port the agent has wired turns ACTIVE (the agent's
//     update_device_up; Nova's attach waits for the network-vif-plugged
//     event that follows);
//   - the subports of a trunk whose parent is bound are bound to the
//     parent's host with device_owner trunk:subport (the trunk RPC's
//     update_subport_bindings, neutron/services/trunk/rpc/server.py: host
//     and device_owner, nothing else) and turn ACTIVE, and so does the
//     trunk.
//
// The agent acts when called (WireTrunk, Plugged), or, for a trunk it is
// told to watch (KeepTrunkWired), whenever a subport appears.
type Agent struct {
	Server *Server
}

// Plugged marks portID ACTIVE, as the agent's report that the port is
// wired does.
func (a Agent) Plugged(_ context.Context, portID string) error {
	return a.Server.SetPortStatus(portID, "ACTIVE")
}

// Unplugged marks portID DOWN, as the agent's report that the port's
// device is gone does (update_device_down): for a subport taken off its
// trunk, which the agent unwires, that is all that changes on the port
// (Neutron's remove_subports leaves its binding and device_owner as they
// were).
func (a Agent) Unplugged(_ context.Context, portID string) error {
	return a.Server.SetPortStatus(portID, "DOWN")
}

// WireTrunk binds every subport of trunkID to its parent's host as
// trunk:subport and marks them and the trunk ACTIVE. The parent must be
// bound (binding:host_id), as the agent only sees trunks on its host.
func (a Agent) WireTrunk(ctx context.Context, trunkID string) error {
	_, err := a.wireTrunk(ctx, trunkID)
	return err
}

// wireTrunk is WireTrunk; it leaves alone the subports already wired
// (ACTIVE, trunk:subport, on the parent's host) and says how many it
// wired. The trunk's status is set only when one was.
func (a Agent) wireTrunk(ctx context.Context, trunkID string) (int, error) {
	var tr struct {
		Trunk struct {
			PortID   string `json:"port_id"`
			Status   string `json:"status"`
			Subports []struct {
				PortID string `json:"port_id"`
			} `json:"sub_ports"`
		} `json:"trunk"`
	}
	if err := a.Server.Call(ctx, http.MethodGet, "/trunks/"+trunkID, nil, &tr); err != nil {
		return 0, err
	}
	type port struct {
		Port struct {
			Host   string `json:"binding:host_id"`
			Owner  string `json:"device_owner"`
			Status string `json:"status"`
		} `json:"port"`
	}
	var parent port
	if err := a.Server.Call(ctx, http.MethodGet, "/ports/"+tr.Trunk.PortID, nil, &parent); err != nil {
		return 0, err
	}
	host := parent.Port.Host
	if host == "" {
		return 0, fmt.Errorf("agent stand-in: parent port %s of trunk %s is not bound to a host", tr.Trunk.PortID, trunkID)
	}
	wired := 0
	for _, sp := range tr.Trunk.Subports {
		var p port
		if err := a.Server.Call(ctx, http.MethodGet, "/ports/"+sp.PortID, nil, &p); err != nil {
			return wired, err
		}
		if p.Port.Status == "ACTIVE" && p.Port.Owner == TrunkSubportOwner && p.Port.Host == host {
			continue
		}
		body := map[string]any{"port": map[string]any{"binding:host_id": host, "device_owner": TrunkSubportOwner}}
		if err := a.Server.Call(ctx, http.MethodPut, "/ports/"+sp.PortID, body, nil); err != nil {
			return wired, err
		}
		if err := a.Server.SetPortStatus(sp.PortID, "ACTIVE"); err != nil {
			return wired, err
		}
		wired++
	}
	if wired == 0 && tr.Trunk.Status == "ACTIVE" {
		return 0, nil
	}
	return wired, a.Server.SetTrunkStatus(trunkID, "ACTIVE")
}

// KeepTrunkWired wires the subports of trunkID as they are added (the
// agent's handling of the trunk's subports_added event, here a look at the
// trunk every period) until ctx ends. A failed look (a subport removed
// between the look at the trunk and the look at the port, too) goes to
// onErr and the next period tries again.
func (a Agent) KeepTrunkWired(ctx context.Context, trunkID string, period time.Duration, onErr func(error)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		if _, err := a.wireTrunk(ctx, trunkID); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
