package neutrontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
// The agent acts when called (WireTrunk, Plugged), not in the background.
type Agent struct {
	Server *Server
}

// Plugged marks portID ACTIVE, as the agent's report that the port is
// wired does.
func (a Agent) Plugged(_ context.Context, portID string) error {
	return a.Server.SetPortStatus(portID, "ACTIVE")
}

// WireTrunk binds every subport of trunkID to its parent's host as
// trunk:subport and marks them and the trunk ACTIVE. The parent must be
// bound (binding:host_id), as the agent only sees trunks on its host.
func (a Agent) WireTrunk(ctx context.Context, trunkID string) error {
	var tr struct {
		Trunk struct {
			PortID   string `json:"port_id"`
			Subports []struct {
				PortID string `json:"port_id"`
			} `json:"sub_ports"`
		} `json:"trunk"`
	}
	if err := a.call(ctx, http.MethodGet, "/trunks/"+trunkID, nil, &tr); err != nil {
		return err
	}
	var parent struct {
		Port struct {
			Host string `json:"binding:host_id"`
		} `json:"port"`
	}
	if err := a.call(ctx, http.MethodGet, "/ports/"+tr.Trunk.PortID, nil, &parent); err != nil {
		return err
	}
	host := parent.Port.Host
	if host == "" {
		return fmt.Errorf("agent stand-in: parent port %s of trunk %s is not bound to a host", tr.Trunk.PortID, trunkID)
	}
	for _, sp := range tr.Trunk.Subports {
		body := map[string]any{"port": map[string]any{"binding:host_id": host, "device_owner": TrunkSubportOwner}}
		if err := a.call(ctx, http.MethodPut, "/ports/"+sp.PortID, body, nil); err != nil {
			return err
		}
		if err := a.Server.SetPortStatus(sp.PortID, "ACTIVE"); err != nil {
			return err
		}
	}
	return a.Server.SetTrunkStatus(trunkID, "ACTIVE")
}

// call sends a JSON request to the server's /v2.0 API and decodes a 2xx
// answer into out (when not nil).
func (a Agent) call(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Server.URL+"/v2.0"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("agent stand-in: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("agent stand-in: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("agent stand-in: %s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}
