// Package bench is the benchmark harness: it builds a cloud topology in a
// real Neutron, drives pods through a real kube-apiserver to a kuryr-controller
// running as a subprocess, stands in for the L2 agent, and measures latency,
// OpenStack requests and memory. Mains live under test/bench/cmd.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Neutron is a minimal client for setting up a benchmark topology in a
// standalone (noauth) Neutron. The controller under test uses its own
// client; this one only creates what an operator would have created.
type Neutron struct {
	// URL is the endpoint without /v2.0, e.g. http://127.0.0.1:9696.
	URL string
	// ProjectID is put in every create body (noauth needs it there).
	ProjectID string
	HTTP      *http.Client
}

// NeutronError is a non-2xx answer.
type NeutronError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *NeutronError) Error() string {
	return fmt.Sprintf("neutron %s %s: status %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// Do sends one request with a JSON body (nil: none) and decodes the JSON
// answer into out (nil: discarded).
func (n *Neutron) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode body of %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(n.URL, "/")+"/v2.0"+path, rd)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := n.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("neutron %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &NeutronError{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Topology is what Setup made: the worker (node VM) network and the pod
// network, and the node VM's parent port with its trunk.
type Topology struct {
	WorkerNetworkID, WorkerSubnetID string
	PodNetworkID, PodSubnetID       string
	ParentPortID, ParentIP          string
	TrunkID                         string
	// ServerID is the (fake) Nova server the parent port belongs to.
	ServerID string
	// HostID is the parent port's binding:host_id (the hypervisor).
	HostID string
}

type idObj struct {
	ID string `json:"id"`
}

// Setup creates, through Neutron's API, what an operator has before
// kuryr runs: a worker network and subnet, a pod network and subnet, the
// node VM's port on the worker subnet with a trunk on it, and then the
// port bound to a host (the trunk must exist before the binding, else
// Neutron answers 409 ParentPortInUse). name prefixes every resource.
func (n *Neutron) Setup(ctx context.Context, name, workerCIDR, podCIDR, serverID, hostID string) (Topology, error) {
	t := Topology{ServerID: serverID, HostID: hostID}
	var err error
	if t.WorkerNetworkID, t.WorkerSubnetID, err = n.network(ctx, name+"-workers", workerCIDR); err != nil {
		return t, err
	}
	if t.PodNetworkID, t.PodSubnetID, err = n.network(ctx, name+"-pods", podCIDR); err != nil {
		return t, err
	}
	var port struct {
		Port struct {
			ID       string `json:"id"`
			FixedIPs []struct {
				IPAddress string `json:"ip_address"`
			} `json:"fixed_ips"`
		} `json:"port"`
	}
	if err := n.Do(ctx, http.MethodPost, "/ports", map[string]any{"port": map[string]any{
		"network_id": t.WorkerNetworkID, "project_id": n.ProjectID, "name": name + "-node-vm",
		"device_id": serverID, "device_owner": "compute:nova",
		"fixed_ips": []map[string]string{{"subnet_id": t.WorkerSubnetID}},
	}}, &port); err != nil {
		return t, fmt.Errorf("create the node VM port: %w", err)
	}
	t.ParentPortID = port.Port.ID
	if len(port.Port.FixedIPs) == 0 {
		return t, fmt.Errorf("node VM port %s has no IP", t.ParentPortID)
	}
	t.ParentIP = port.Port.FixedIPs[0].IPAddress
	var trunk struct {
		Trunk idObj `json:"trunk"`
	}
	if err := n.Do(ctx, http.MethodPost, "/trunks", map[string]any{"trunk": map[string]any{
		"port_id": t.ParentPortID, "project_id": n.ProjectID, "name": name + "-trunk",
	}}, &trunk); err != nil {
		return t, fmt.Errorf("create the trunk on port %s: %w", t.ParentPortID, err)
	}
	t.TrunkID = trunk.Trunk.ID
	if err := n.Do(ctx, http.MethodPut, "/ports/"+t.ParentPortID, map[string]any{"port": map[string]any{
		"binding:host_id": hostID,
	}}, nil); err != nil {
		return t, fmt.Errorf("bind port %s to host %s: %w", t.ParentPortID, hostID, err)
	}
	return t, nil
}

func (n *Neutron) network(ctx context.Context, name, cidr string) (netID, subnetID string, err error) {
	var net struct {
		Network idObj `json:"network"`
	}
	if err := n.Do(ctx, http.MethodPost, "/networks", map[string]any{"network": map[string]any{
		"name": name, "project_id": n.ProjectID,
	}}, &net); err != nil {
		return "", "", fmt.Errorf("create network %s: %w", name, err)
	}
	var sub struct {
		Subnet idObj `json:"subnet"`
	}
	if err := n.Do(ctx, http.MethodPost, "/subnets", map[string]any{"subnet": map[string]any{
		"name": name, "network_id": net.Network.ID, "project_id": n.ProjectID, "ip_version": 4, "cidr": cidr,
	}}, &sub); err != nil {
		return "", "", fmt.Errorf("create subnet %s on network %s: %w", cidr, net.Network.ID, err)
	}
	return net.Network.ID, sub.Subnet.ID, nil
}

// CountPorts returns how many ports match the filters of q (Neutron's
// query parameters, e.g. tags=a,b or device_owner=compute:kuryr).
func (n *Neutron) CountPorts(ctx context.Context, q url.Values) (int, error) {
	q = maps.Clone(q)
	if q == nil {
		q = url.Values{}
	}
	q.Set("fields", "id")
	var out struct {
		Ports []idObj `json:"ports"`
	}
	if err := n.Do(ctx, http.MethodGet, "/ports?"+q.Encode(), nil, &out); err != nil {
		return 0, err
	}
	return len(out.Ports), nil
}

// SecurityGroup creates a security group named name and returns its ID.
func (n *Neutron) SecurityGroup(ctx context.Context, name string) (string, error) {
	var sg struct {
		SecurityGroup idObj `json:"security_group"`
	}
	if err := n.Do(ctx, http.MethodPost, "/security-groups", map[string]any{"security_group": map[string]any{
		"name": name, "project_id": n.ProjectID,
	}}, &sg); err != nil {
		return "", fmt.Errorf("create security group %s: %w", name, err)
	}
	return sg.SecurityGroup.ID, nil
}

// DropPorts deletes the ports matching the filters of q, first taking
// those that are subports of trunkID off it, and returns how many it
// deleted: what a pooled controller leaves on purpose (its pool), removed
// so that the next controller starts from the same Neutron.
func (n *Neutron) DropPorts(ctx context.Context, trunkID string, q url.Values) (int, error) {
	q = maps.Clone(q)
	q.Set("fields", "id")
	var ports struct {
		Ports []idObj `json:"ports"`
	}
	if err := n.Do(ctx, http.MethodGet, "/ports?"+q.Encode(), nil, &ports); err != nil {
		return 0, err
	}
	var subs struct {
		SubPorts []struct {
			PortID string `json:"port_id"`
		} `json:"sub_ports"`
	}
	if err := n.Do(ctx, http.MethodGet, "/trunks/"+trunkID+"/get_subports", nil, &subs); err != nil {
		return 0, err
	}
	drop := map[string]bool{}
	for _, p := range ports.Ports {
		drop[p.ID] = true
	}
	var off []map[string]string
	for _, s := range subs.SubPorts {
		if drop[s.PortID] {
			off = append(off, map[string]string{"port_id": s.PortID})
		}
	}
	if len(off) > 0 {
		if err := n.Do(ctx, http.MethodPut, "/trunks/"+trunkID+"/remove_subports", map[string]any{"sub_ports": off}, nil); err != nil {
			return 0, err
		}
	}
	for _, p := range ports.Ports {
		if err := n.Do(ctx, http.MethodDelete, "/ports/"+p.ID, nil, nil); err != nil {
			return 0, err
		}
	}
	return len(ports.Ports), nil
}
