package novastandin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// fakeNeutron keeps ports in memory.
type fakeNeutron struct {
	mu    sync.Mutex
	ports map[string]openstack.Port
}

var _ Neutron = (*fakeNeutron)(nil)

func (f *fakeNeutron) GetPort(_ context.Context, id string) (openstack.Port, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[id]
	if !ok {
		return p, fmt.Errorf("port %s: %w", id, openstack.ErrNotFound)
	}
	return p, nil
}

func (f *fakeNeutron) ListPorts(_ context.Context, flt openstack.PortFilter) ([]openstack.Port, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []openstack.Port
	for _, p := range f.ports {
		if flt.DeviceID == "" || p.DeviceID == flt.DeviceID {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakeNeutron) BindPort(_ context.Context, id string, b Binding) (openstack.Port, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[id]
	if !ok {
		return p, fmt.Errorf("port %s: %w", id, openstack.ErrNotFound)
	}
	p.DeviceID, p.DeviceOwner, p.HostID = b.DeviceID, b.DeviceOwner, b.HostID
	f.ports[id] = p
	return p, nil
}

// failingUnplug fails every unplug.
type failingUnplug struct{ recorder }

func (*failingUnplug) Unplug(context.Context, string, Device) error {
	return errors.New("device_del timed out")
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestNovaErrorsAndFailedDetach covers, without a real Neutron, the answers
// the contract test cannot provoke there: bad bodies, and a detach whose
// unplug fails (the port stays attached, as Nova leaves it).
func TestNovaErrorsAndFailedDetach(t *testing.T) {
	t.Parallel()
	neutron := &fakeNeutron{ports: map[string]openstack.Port{
		"p1": {ID: "p1", NetworkID: "n1", MACAddress: "fa:16:3e:00:00:01", Status: "ACTIVE"},
	}}
	hp := &failingUnplug{recorder{plugged: map[string]string{}}}
	n := New(neutron, logr.Discard())
	defer n.Close()
	n.AddServer(Server{ID: "s1", Name: "node", Host: "h1", Hotplug: hp})

	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", "/v2.1/servers/nope", "", 404, `"itemNotFound"`},
		{"POST", "/v2.1/servers/s1/os-interface", `{}`, 400, `"badRequest"`},
		{"POST", "/v2.1/servers/s1/os-interface", `not json`, 400, `"badRequest"`},
		{"POST", "/v2.1/servers/s1/os-interface", `{"interfaceAttachment":{"net_id":"n1"}}`, 400, "port_id is required"},
		{"POST", "/v2.1/servers/s1/os-interface", `{"interfaceAttachment":{"port_id":"p1","net_id":"n2"}}`, 400, "not on network n2"},
		{"POST", "/v2.1/servers/s1/os-interface", `{"interfaceAttachment":{"port_id":"p1"}}`, 200, `"port_state":"ACTIVE"`},
		{"POST", "/v2.1/servers/s1/os-interface", `{"interfaceAttachment":{"port_id":"p1"}}`, 409, `"conflictingRequest"`},
		{"GET", "/v2.1/servers/s1/os-interface", "", 200, `"port_id":"p1"`},
		{"DELETE", "/v2.1/servers/s1/os-interface/p9", "", 404, "is not attached"},
		{"DELETE", "/v2.1/servers/s1/os-interface/p1", "", 202, ""},
	} {
		status, body := do(t, n, tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d and %q", tc.method, tc.path, tc.body, status, body, tc.status, tc.want)
		}
	}
	// The failed unplug leaves the interface attached and the port bound.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n.mu.Lock()
		busy := n.servers["s1"].detaching["p1"]
		n.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("detach still under way after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status, body := do(t, n, "GET", "/v2.1/servers/s1/os-interface/p1", ""); status != 200 {
		t.Errorf("after a failed unplug: GET attachment %d %s, want 200", status, body)
	}
	if p, _ := neutron.GetPort(context.Background(), "p1"); p.DeviceID != "s1" || p.HostID != "h1" || p.DeviceOwner != DeviceOwner {
		t.Errorf("after a failed unplug the port is %+v, want still bound to s1", p)
	}
}
