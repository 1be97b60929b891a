// Package novastandin is a Nova stand-in for servers that are QEMU VMs: it
// serves the subset of the Nova v2.1 API that kuryr-dpdk's OpenStack client
// uses (GET /servers/{id}, POST/GET/DELETE /servers/{id}/os-interface[/{port}])
// and does for an interface attach what Nova and libvirt do: bind the port in
// Neutron (device_id, device_owner compute:nova, binding:host_id) and
// hot-plug a virtio-net-pci device with the port's MAC into the VM (a
// Hotplugger; QEMUHotplug drives internal/qemu over QMP). Detach unplugs the
// device and clears the binding, asynchronously after a 202, as Nova does.
//
// Nova itself is not installable here in reasonable size; see
// docs/node-vm.md.
package novastandin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// DeviceOwner is what Nova writes in device_owner (compute:<availability zone>).
const DeviceOwner = "compute:nova"

// Device is what a hot-plug needs to know of a port.
type Device struct {
	PortID string
	MAC    string
}

// Hotplugger plugs and unplugs a server's virtio-net devices, as libvirt
// does for Nova.
type Hotplugger interface {
	// Plug adds a device with the port's MAC; it returns once the
	// hypervisor has accepted it (the guest sees it a little later).
	Plug(ctx context.Context, serverID string, d Device) error
	// Unplug removes the device and returns once the guest released it.
	// Unplugging a device that is not there succeeds.
	Unplug(ctx context.Context, serverID string, d Device) error
}

// Server is a Nova server the stand-in serves.
type Server struct {
	ID, Name string
	// Host is the compute host (OS-EXT-SRV-ATTR:host and the ports'
	// binding:host_id).
	Host string
	// Hotplug plugs this server's devices.
	Hotplug Hotplugger
}

// Agent stands in for the L2 agent of the compute host: Nova's attach
// waits for Neutron's network-vif-plugged event, which comes once the agent
// has wired the port and Neutron has marked it ACTIVE. Plugged returns once
// the port is ACTIVE.
type Agent interface {
	Plugged(ctx context.Context, portID string) error
}

// Nova is the stand-in. It is an http.Handler; Start serves it.
type Nova struct {
	neutron Neutron
	log     logr.Logger
	// agent, when set (SetAgent), is waited for on attach; without one
	// the attach answers once the device is plugged and the port stays as
	// Neutron leaves it (DOWN with no agent).
	agent Agent

	mu      sync.Mutex
	servers map[string]*server
	// bg bounds the asynchronous detaches; Close ends them.
	bg     context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mux    *http.ServeMux
	srv    *http.Server
	url    string
	closed sync.Once
}

type server struct {
	Server
	// op serialises attach and detach of one server, as Nova's instance
	// lock does.
	op sync.Mutex
	// detaching holds the ports whose detach is under way.
	detaching map[string]bool
}

var _ http.Handler = (*Nova)(nil)

// New returns a stand-in that binds ports in neutron. log may be the zero
// logr.Logger (discards).
func New(neutron Neutron, log logr.Logger) *Nova {
	bg, stop := context.WithCancel(context.Background())
	n := &Nova{neutron: neutron, log: log, servers: map[string]*server{}, bg: bg, stop: stop, mux: http.NewServeMux()}
	const p = "/v2.1/servers/{id}"
	n.mux.HandleFunc("GET "+p, n.getServer)
	n.mux.HandleFunc("POST "+p+"/os-interface", n.attach)
	n.mux.HandleFunc("GET "+p+"/os-interface", n.list)
	n.mux.HandleFunc("GET "+p+"/os-interface/{port}", n.get)
	n.mux.HandleFunc("DELETE "+p+"/os-interface/{port}", n.detach)
	return n
}

// SetAgent makes attaches wait for a (test's) L2 agent; call it before
// Start.
func (n *Nova) SetAgent(a Agent) { n.agent = a }

// AddServer makes s known (replacing a server of the same ID).
func (n *Nova) AddServer(s Server) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.servers[s.ID] = &server{Server: s, detaching: map[string]bool{}}
}

// Start serves the stand-in on addr ("127.0.0.1:0" for a free port) until
// Close; URL then gives the endpoint for openstack.Config.NovaURL.
func (n *Nova) Start(ctx context.Context, addr string) error {
	l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("nova stand-in: listen on %s: %w", addr, err)
	}
	n.url = "http://" + l.Addr().String() + "/v2.1"
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.srv.Serve(l) }()
	return nil
}

// URL is the Nova endpoint with /v2.1, e.g. http://127.0.0.1:8774/v2.1.
func (n *Nova) URL() string { return n.url }

// Close stops the server and waits for detaches under way (their context
// is cancelled).
func (n *Nova) Close() {
	n.closed.Do(func() {
		if n.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.srv.Shutdown(ctx)
		}
		n.stop()
		n.wg.Wait()
	})
}

// ServeHTTP implements http.Handler.
func (n *Nova) ServeHTTP(w http.ResponseWriter, r *http.Request) { n.mux.ServeHTTP(w, r) }

func (n *Nova) server(w http.ResponseWriter, r *http.Request) *server {
	id := r.PathValue("id")
	n.mu.Lock()
	s := n.servers[id]
	n.mu.Unlock()
	if s == nil {
		novaError(w, http.StatusNotFound, fmt.Sprintf("Instance %s could not be found.", id))
	}
	return s
}

func (n *Nova) getServer(w http.ResponseWriter, r *http.Request) {
	s := n.server(w, r)
	if s == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": map[string]any{
		"id": s.ID, "name": s.Name, "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": s.Host,
		"OS-EXT-SRV-ATTR:hypervisor_hostname": s.Host, "OS-EXT-STS:vm_state": "active",
		"OS-EXT-STS:power_state": 1, "OS-EXT-STS:task_state": nil,
	}})
}

// interfaceJSON renders an interfaceAttachment as Nova does: port_state is
// the port's Neutron status.
func interfaceJSON(p openstack.Port, serverID string) map[string]any {
	ips := p.FixedIPs
	if ips == nil {
		ips = []openstack.FixedIP{}
	}
	return map[string]any{"port_id": p.ID, "net_id": p.NetworkID, "mac_addr": p.MACAddress,
		"port_state": p.Status, "fixed_ips": ips, "server_id": serverID, "tag": nil}
}

// attach answers POST os-interface {"interfaceAttachment": {"port_id": ...}}:
// 404 for an unknown port, 409 for a port in use, else bind, hot-plug and
// 200; a failed hot-plug unbinds the port again and answers 500.
func (n *Nova) attach(w http.ResponseWriter, r *http.Request) {
	s := n.server(w, r)
	if s == nil {
		return
	}
	var body struct {
		Attachment *struct {
			PortID string `json:"port_id"`
			NetID  string `json:"net_id"`
		} `json:"interfaceAttachment"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.Attachment == nil {
		novaError(w, http.StatusBadRequest, "Invalid input: a body {\"interfaceAttachment\": {...}} is required.")
		return
	}
	portID := body.Attachment.PortID
	if portID == "" {
		novaError(w, http.StatusBadRequest, "The Nova stand-in attaches existing ports only: port_id is required.")
		return
	}
	ctx := r.Context()
	s.op.Lock()
	defer s.op.Unlock()
	p, err := n.neutron.GetPort(ctx, portID)
	if errors.Is(err, openstack.ErrNotFound) {
		novaError(w, http.StatusNotFound, fmt.Sprintf("Port id %s could not be found.", portID))
		return
	}
	if err != nil {
		novaError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if body.Attachment.NetID != "" && body.Attachment.NetID != p.NetworkID {
		novaError(w, http.StatusBadRequest, fmt.Sprintf("Port %s is not on network %s.", portID, body.Attachment.NetID))
		return
	}
	if p.DeviceID != "" {
		novaError(w, http.StatusConflict, fmt.Sprintf("Port %s is still in use.", portID))
		return
	}
	p, err = n.neutron.BindPort(ctx, portID, Binding{DeviceID: s.ID, DeviceOwner: DeviceOwner, HostID: s.Host})
	if err != nil {
		novaError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err := s.Hotplug.Plug(ctx, s.ID, Device{PortID: p.ID, MAC: p.MACAddress}); err != nil {
		if _, uerr := n.neutron.BindPort(context.WithoutCancel(ctx), portID, Binding{}); uerr != nil {
			n.log.Error(uerr, "unbind after a failed hot-plug", "server", s.ID, "port", portID)
		}
		novaError(w, http.StatusInternalServerError, fmt.Sprintf("Failed to attach network adapter device to %s: %v", s.ID, err))
		return
	}
	if n.agent != nil {
		if err := n.agent.Plugged(ctx, portID); err != nil {
			novaError(w, http.StatusInternalServerError, fmt.Sprintf("Failed waiting for network-vif-plugged of port %s: %v", portID, err))
			return
		}
		if p, err = n.neutron.GetPort(ctx, portID); err != nil {
			novaError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	n.log.V(1).Info("attached", "server", s.ID, "port", portID, "mac", p.MACAddress)
	writeJSON(w, http.StatusOK, map[string]any{"interfaceAttachment": interfaceJSON(p, s.ID)})
}

// attached returns the ports Nova would list for s: bound to it by Nova.
func (n *Nova) attached(ctx context.Context, s *server) ([]openstack.Port, error) {
	ps, err := n.neutron.ListPorts(ctx, openstack.PortFilter{DeviceID: s.ID})
	if err != nil {
		return nil, err
	}
	var out []openstack.Port
	for _, p := range ps {
		if strings.HasPrefix(p.DeviceOwner, "compute:") {
			out = append(out, p)
		}
	}
	return out, nil
}

func (n *Nova) list(w http.ResponseWriter, r *http.Request) {
	s := n.server(w, r)
	if s == nil {
		return
	}
	ps, err := n.attached(r.Context(), s)
	if err != nil {
		novaError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []map[string]any{}
	for _, p := range ps {
		out = append(out, interfaceJSON(p, s.ID))
	}
	writeJSON(w, http.StatusOK, map[string]any{"interfaceAttachments": out})
}

// get answers GET os-interface/{port}: the attachment while the port is
// bound to the server (also while a detach is under way), else 404.
func (n *Nova) get(w http.ResponseWriter, r *http.Request) {
	s := n.server(w, r)
	if s == nil {
		return
	}
	portID := r.PathValue("port")
	p, err := n.neutron.GetPort(r.Context(), portID)
	if errors.Is(err, openstack.ErrNotFound) || (err == nil && (p.DeviceID != s.ID || !strings.HasPrefix(p.DeviceOwner, "compute:"))) {
		novaError(w, http.StatusNotFound, fmt.Sprintf("Attachment %s could not be found.", portID))
		return
	}
	if err != nil {
		novaError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"interfaceAttachment": interfaceJSON(p, s.ID)})
}

// detach answers DELETE os-interface/{port}: 404 if the port is not
// attached to the server, else 202 at once; the unplug and then the unbind
// follow in the background, so GET os-interface/{port} keeps answering
// until the device has left the guest.
func (n *Nova) detach(w http.ResponseWriter, r *http.Request) {
	s := n.server(w, r)
	if s == nil {
		return
	}
	portID := r.PathValue("port")
	p, err := n.neutron.GetPort(r.Context(), portID)
	if errors.Is(err, openstack.ErrNotFound) || (err == nil && p.DeviceID != s.ID) {
		novaError(w, http.StatusNotFound, fmt.Sprintf("Port %s is not attached", portID))
		return
	}
	if err != nil {
		novaError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n.mu.Lock()
	busy := s.detaching[portID]
	s.detaching[portID] = true
	n.mu.Unlock()
	if !busy {
		n.wg.Add(1)
		go n.finishDetach(s, p)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (n *Nova) finishDetach(s *server, p openstack.Port) {
	defer n.wg.Done()
	defer func() {
		n.mu.Lock()
		delete(s.detaching, p.ID)
		n.mu.Unlock()
	}()
	s.op.Lock()
	defer s.op.Unlock()
	ctx, cancel := context.WithTimeout(n.bg, 2*time.Minute)
	defer cancel()
	if err := s.Hotplug.Unplug(ctx, s.ID, Device{PortID: p.ID, MAC: p.MACAddress}); err != nil {
		// Nova leaves the interface attached when libvirt fails to detach.
		n.log.Error(err, "detach: unplug failed; the port stays attached", "server", s.ID, "port", p.ID)
		return
	}
	if _, err := n.neutron.BindPort(ctx, p.ID, Binding{}); err != nil && !errors.Is(err, openstack.ErrNotFound) {
		n.log.Error(err, "detach: unbind failed", "server", s.ID, "port", p.ID)
		return
	}
	n.log.V(1).Info("detached", "server", s.ID, "port", p.ID)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// novaError answers as Nova does: {"itemNotFound": {"code": 404, "message": ...}}.
func novaError(w http.ResponseWriter, status int, msg string) {
	name := map[int]string{400: "badRequest", 404: "itemNotFound", 409: "conflictingRequest"}[status]
	if name == "" {
		name = "computeFault"
	}
	writeJSON(w, status, map[string]any{name: map[string]any{"code": status, "message": msg}})
}
