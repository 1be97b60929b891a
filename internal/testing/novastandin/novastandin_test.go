package novastandin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/neutrontest"
)

// recorder is a Hotplugger that records calls; Unplug blocks until release
// is closed (when set), and Plug fails while failPlug is set.
type recorder struct {
	mu       sync.Mutex
	plugged  map[string]string // port → MAC
	calls    []string
	failPlug bool
	release  chan struct{}
}

func (r *recorder) Plug(_ context.Context, serverID string, d Device) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "plug "+serverID+" "+d.PortID+" "+d.MAC)
	if r.failPlug {
		return errors.New("no free pcie-root-port")
	}
	r.plugged[d.PortID] = d.MAC
	return nil
}

func (r *recorder) Unplug(ctx context.Context, serverID string, d Device) error {
	if r.release != nil {
		select {
		case <-r.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "unplug "+serverID+" "+d.PortID)
	delete(r.plugged, d.PortID)
	return nil
}

func (r *recorder) mac(port string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.plugged[port]
}

// post creates a Neutron resource (noauth: project_id in the body).
func post(t *testing.T, url, kind string, body map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(map[string]any{kind: body})
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %s (%v) %v", kind, resp.Status, err, out)
	}
	return out[kind]
}

// TestAgainstRealNeutron drives the stand-in through internal/openstack's
// Nova calls (what the controller makes) while it binds ports in a real
// neutron-server.
func TestAgainstRealNeutron(t *testing.T) {
	srv := neutrontest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	net := post(t, srv.URL+"/v2.0/networks", "network", map[string]any{"name": "dataplane", "project_id": srv.ProjectID})
	sub := post(t, srv.URL+"/v2.0/subnets", "subnet", map[string]any{"network_id": net["id"], "cidr": "10.3.0.0/24",
		"ip_version": 4, "project_id": srv.ProjectID})
	newPort := func(name string) map[string]any {
		return post(t, srv.URL+"/v2.0/ports", "port", map[string]any{"network_id": net["id"], "name": name,
			"fixed_ips": []map[string]any{{"subnet_id": sub["id"]}}, "project_id": srv.ProjectID})
	}
	port := newPort("dpdk-1")
	portID, mac := port["id"].(string), port["mac_address"].(string)

	neutron, err := NewNeutronClient(ctx, srv.URL, srv.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	hp := &recorder{plugged: map[string]string{}}
	nova := New(neutron, testr.New(t))
	const serverID, host = "6f1c2b9e-0000-4000-8000-000000000001", "compute-1"
	nova.AddServer(Server{ID: serverID, Name: "node-1", Host: host, Hotplug: hp})
	if err := nova.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer nova.Close()

	// The controller's client, noauth on both services.
	c, err := openstack.New(ctx, openstack.Config{NeutronURL: srv.URL, NovaURL: nova.URL(), ProjectID: srv.ProjectID, RequestTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.GetServer(ctx, serverID)
	if err != nil || s.ID != serverID || s.Host != host || s.Status != "ACTIVE" {
		t.Fatalf("GetServer: %+v, %v", s, err)
	}
	if _, err := c.GetServer(ctx, "nope"); !errors.Is(err, openstack.ErrNotFound) {
		t.Errorf("GetServer of an unknown server: %v, want ErrNotFound", err)
	}

	// Attach: bound in Neutron, hot-plugged with the port's MAC.
	ifc, err := c.AttachInterface(ctx, serverID, portID)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if ifc.PortID != portID || ifc.MAC != mac || ifc.NetworkID != net["id"] || len(ifc.FixedIPs) != 1 {
		t.Errorf("attach answered %+v", ifc)
	}
	if got := hp.mac(portID); got != mac {
		t.Errorf("hot-plugged MAC %q, want %q", got, mac)
	}
	p, err := c.GetPort(ctx, portID)
	if err != nil {
		t.Fatal(err)
	}
	if p.DeviceID != serverID || p.DeviceOwner != DeviceOwner || p.HostID != host {
		t.Errorf("port in Neutron after attach: device_id %q device_owner %q binding:host_id %q", p.DeviceID, p.DeviceOwner, p.HostID)
	}
	t.Logf("real Neutron after the bind: status %s, binding:vif_type %q", p.Status, p.VIFType)
	if ifc.PortState != p.Status {
		t.Errorf("port_state %q, Neutron says %q", ifc.PortState, p.Status)
	}

	// Attach state follows Neutron's port status, as Nova's does: the test
	// stands in for the L2 agent.
	if err := srv.SetPortStatus(portID, openstack.PortStatusActive); err != nil {
		t.Fatal(err)
	}
	if ifc, err = c.GetInterface(ctx, serverID, portID); err != nil || ifc.PortState != openstack.PortStatusActive {
		t.Errorf("GetInterface after the agent: %+v, %v", ifc, err)
	}
	list, err := c.ListInterfaces(ctx, serverID)
	if err != nil || len(list) != 1 || list[0].PortID != portID {
		t.Errorf("ListInterfaces: %+v, %v", list, err)
	}

	// Errors as Nova gives them.
	if _, err := c.AttachInterface(ctx, serverID, portID); !errors.Is(err, openstack.ErrConflict) {
		t.Errorf("attaching a port in use: %v, want ErrConflict", err)
	}
	if _, err := c.AttachInterface(ctx, serverID, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, openstack.ErrNotFound) {
		t.Errorf("attaching an unknown port: %v, want ErrNotFound", err)
	}
	if _, err := c.GetInterface(ctx, serverID, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, openstack.ErrNotFound) {
		t.Errorf("GetInterface of an unknown port: %v, want ErrNotFound", err)
	}

	// A failed hot-plug fails the attach and leaves the port unbound.
	other := newPort("dpdk-2")
	hp.mu.Lock()
	hp.failPlug = true
	hp.mu.Unlock()
	if _, err := c.AttachInterface(ctx, serverID, other["id"].(string)); err == nil || errors.Is(err, openstack.ErrNotFound) {
		t.Errorf("attach with a failing hot-plug: %v, want a server error", err)
	}
	if p, err := c.GetPort(ctx, other["id"].(string)); err != nil || p.DeviceID != "" || p.HostID != "" {
		t.Errorf("port after the failed attach: %+v, %v (want unbound)", p, err)
	}

	// Detach: 202 at once, the attachment stays visible until the device
	// has left the guest, then the port is unbound.
	hp.release = make(chan struct{})
	if err := c.DetachInterface(ctx, serverID, portID); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if _, err := c.GetInterface(ctx, serverID, portID); err != nil {
		t.Errorf("GetInterface while the unplug is under way: %v, want the attachment", err)
	}
	if err := c.DetachInterface(ctx, serverID, portID); err != nil {
		t.Errorf("a second detach while the first runs: %v", err)
	}
	close(hp.release)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.GetInterface(ctx, serverID, portID)
		if errors.Is(err, openstack.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attachment still there 20 s after the detach: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p, err := c.GetPort(ctx, portID); err != nil || p.DeviceID != "" || p.DeviceOwner != "" || p.HostID != "" {
		t.Errorf("port after detach: %+v, %v (want unbound)", p, err)
	}
	if got := hp.mac(portID); got != "" {
		t.Errorf("device still plugged after detach")
	}
	if err := c.DetachInterface(ctx, serverID, portID); err != nil {
		t.Errorf("detaching a detached port: %v, want success", err)
	}
	hp.mu.Lock()
	t.Logf("hot-plug calls: %q", hp.calls)
	unplugs := 0
	for _, c := range hp.calls {
		if len(c) > 6 && c[:6] == "unplug" {
			unplugs++
		}
	}
	hp.mu.Unlock()
	if unplugs != 1 {
		t.Errorf("%d unplugs, want 1 (the second detach must not unplug again)", unplugs)
	}
}
