package cloudsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type harness struct {
	t     *testing.T
	c     *Cloud
	token string
}

func start(t *testing.T, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := New(opts)
	if err := c.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h := &harness{t: t, c: c}
	if !opts.NoAuth {
		cr := c.Credentials()
		body := fmt.Sprintf(`{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": %q,
			"password": %q, "domain": {"name": "Default"}}}}, "scope": {"project": {"name": %q, "domain": {"name": "Default"}}}}}`,
			cr.UserName, cr.Password, cr.ProjectName)
		resp := h.raw("POST", "/identity/v3/auth/tokens", body, nil)
		if resp.StatusCode != 201 || resp.Header.Get("X-Subject-Token") == "" {
			t.Fatalf("token: %d", resp.StatusCode)
		}
		h.token = resp.Header.Get("X-Subject-Token")
	}
	return h
}

func (h *harness) raw(method, path, body string, hdr map[string]string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.c.URL()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if h.token != "" {
		req.Header.Set("X-Auth-Token", h.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// do sends a request and decodes the JSON answer.
func (h *harness) do(method, path, body string, hdr ...string) (int, map[string]any) {
	h.t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(hdr); i += 2 {
		m[hdr[i]] = hdr[i+1]
	}
	resp := h.raw(method, path, body, m)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			h.t.Fatalf("%s %s: answer is not JSON: %q", method, path, b)
		}
	}
	return resp.StatusCode, out
}

func neutronErr(t *testing.T, out map[string]any, typ string) {
	t.Helper()
	ne, ok := out["NeutronError"].(map[string]any)
	if !ok || ne["type"] != typ || ne["message"] == "" || ne["detail"] != "" {
		t.Errorf("error body %v, want NeutronError type %s", out, typ)
	}
}

const nw = "/network/v2.0"

func (h *harness) seed() (Network, Subnet) {
	n, s, err := h.c.SeedNetwork("pods", "10.20.0.0/24")
	if err != nil {
		h.t.Fatal(err)
	}
	return n, s
}

func (h *harness) port(netID string, extra string) map[string]any {
	h.t.Helper()
	st, out := h.do("POST", nw+"/ports", fmt.Sprintf(`{"port": {"network_id": %q%s}}`, netID, extra))
	if st != 201 {
		h.t.Fatalf("create port: %d %v", st, out)
	}
	return out["port"].(map[string]any)
}

func TestPortShapeAndErrors(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, s := h.seed()
	p := h.port(n.ID, `, "name": "a"`)
	if p["status"] != "DOWN" || !strings.HasPrefix(p["mac_address"].(string), "fa:16:3e:") ||
		p["revision_number"] != 1.0 || p["project_id"] != h.c.Credentials().ProjectID || p["binding:vif_type"] != "unbound" {
		t.Errorf("port %v", p)
	}
	ips := p["fixed_ips"].([]any)
	if len(ips) != 1 || ips[0].(map[string]any)["subnet_id"] != s.ID || ips[0].(map[string]any)["ip_address"] != "10.20.0.2" {
		t.Errorf("fixed_ips %v", ips)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		typ                string
	}{
		{"GET", nw + "/ports/nope", "", 404, "PortNotFound"},
		{"POST", nw + "/ports", `{"port": {}}`, 400, "HTTPBadRequest"},
		{"POST", nw + "/ports", `{"port": {"network_id": "x", "bogus": 1}}`, 400, "HTTPBadRequest"},
		{"POST", nw + "/ports", `not json`, 400, "HTTPBadRequest"},
		{"POST", nw + "/ports", `{"port": {"network_id": "nope"}}`, 404, "NetworkNotFound"},
		{"PUT", nw + "/ports/" + p["id"].(string), `{"port": {"network_id": "x"}}`, 400, "HTTPBadRequest"},
		{"POST", nw + "/ports", fmt.Sprintf(`{"port": {"network_id": %q, "fixed_ips": [{"ip_address": "10.20.0.2"}]}}`, n.ID), 409, "IpAddressAlreadyAllocated"},
		{"POST", nw + "/ports", fmt.Sprintf(`{"port": {"network_id": %q, "security_groups": ["nope"]}}`, n.ID), 404, "SecurityGroupNotFound"},
	} {
		st, out := h.do(tc.method, tc.path, tc.body)
		if st != tc.status {
			t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, st, tc.status)
		}
		neutronErr(t, out, tc.typ)
	}
	if st, out := h.do("GET", "/compute/v2.1/servers/nope", ""); st != 404 || out["itemNotFound"] == nil {
		t.Errorf("nova 404: %d %v", st, out)
	}
	h.token = ""
	if st, _ := h.do("GET", nw+"/ports", ""); st != 401 {
		t.Errorf("without a token: %d", st)
	}
}

func TestRevisionIfMatch(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, _ := h.seed()
	id := h.port(n.ID, "")["id"].(string)
	body := `{"port": {"allowed_address_pairs": [{"ip_address": "10.20.0.100"}]}}`
	st, out := h.do("PUT", nw+"/ports/"+id, body, "If-Match", "revision_number=1")
	if st != 200 || out["port"].(map[string]any)["revision_number"] != 2.0 {
		t.Fatalf("update at the right revision: %d %v", st, out)
	}
	st, out = h.do("PUT", nw+"/ports/"+id, body, "If-Match", "revision_number=1")
	if st != 412 {
		t.Errorf("update at a stale revision: %d", st)
	}
	neutronErr(t, out, "RevisionNumberConstraintFailed")
	if st, _ := h.do("PUT", nw+"/ports/"+id, body, "If-Match", "garbage"); st != 400 {
		t.Errorf("malformed If-Match: %d", st)
	}
	if st, _ := h.do("PUT", nw+"/ports/"+id+"/tags/t1", ""); st != 201 {
		t.Errorf("add tag: %d", st)
	}
	_, out = h.do("GET", nw+"/ports/"+id, "")
	if out["port"].(map[string]any)["revision_number"] != 3.0 {
		t.Errorf("a tag did not bump the revision: %v", out)
	}
}

func TestTagFilters(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, _ := h.seed()
	a := h.port(n.ID, `, "tags": ["c1", "pod-a"]`)["id"]
	b := h.port(n.ID, `, "tags": ["c1", "pod-b"]`)["id"]
	h.port(n.ID, `, "tags": ["c2"]`)
	for q, want := range map[string][]any{
		"tags=c1":                {a, b},
		"tags=c1,pod-a":          {a},
		"tags=c1&tags=pod-b":     {b},
		"tags-any=pod-a,pod-b":   {a, b},
		"tags=c1&not-tags=pod-a": {b},
		"tags=nope":              {},
	} {
		_, out := h.do("GET", nw+"/ports?"+q, "")
		var got []any
		for _, p := range out["ports"].([]any) {
			got = append(got, p.(map[string]any)["id"])
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	if st, out := h.do("DELETE", nw+"/ports/"+a.(string)+"/tags/absent", ""); st != 404 {
		t.Errorf("delete absent tag: %d %v", st, out)
	}
}

func TestBulkIsAtomicAndExhaustion(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, _, err := h.c.SeedNetwork("small", "10.30.0.0/29") // .2-.6 free (gateway .1)
	if err != nil {
		t.Fatal(err)
	}
	st, out := h.do("POST", nw+"/ports", fmt.Sprintf(`{"ports": [{"network_id": %q}, {"network_id": "nope"}]}`, n.ID))
	if st != 404 || len(h.c.Ports()) != 0 {
		t.Errorf("bad bulk: %d %v, %d ports left", st, out, len(h.c.Ports()))
	}
	for i := range 5 {
		if st, out := h.do("POST", nw+"/ports", fmt.Sprintf(`{"port": {"network_id": %q}}`, n.ID)); st != 201 {
			t.Fatalf("port %d: %d %v", i, st, out)
		}
	}
	st, out = h.do("POST", nw+"/ports", fmt.Sprintf(`{"port": {"network_id": %q}}`, n.ID))
	if st != 409 {
		t.Errorf("exhausted subnet: %d", st)
	}
	neutronErr(t, out, "IpAddressGenerationFailure")
}

func TestNoAuthNeedsProjectID(t *testing.T) {
	t.Parallel()
	h := start(t, Options{NoAuth: true})
	n, _ := h.seed()
	st, out := h.do("POST", nw+"/ports", fmt.Sprintf(`{"port": {"network_id": %q}}`, n.ID))
	if st != 400 {
		t.Errorf("noauth create without project_id: %d %v", st, out)
	}
	p := h.port(n.ID, `, "project_id": "p1"`)
	if p["project_id"] != "p1" || p["tenant_id"] != "p1" {
		t.Errorf("port %v", p)
	}
}

type recorder struct {
	mu        sync.Mutex
	attached  []Port
	detached  []Port
	attachErr error
}

func (r *recorder) Attached(_ context.Context, _ string, p Port) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attached = append(r.attached, p)
	return r.attachErr
}

func (r *recorder) Detached(_ context.Context, _ string, p Port) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detached = append(r.detached, p)
	return nil
}

// node seeds server node-1 with a trunk parent port on subnetID.
func (h *harness) node(subnetID string) SeededServer {
	h.t.Helper()
	srv, err := h.c.SeedServer(ServerSpec{Name: "node-1", SubnetID: subnetID, Trunk: true})
	if err != nil {
		h.t.Fatal(err)
	}
	return srv
}

func TestServerHookAndTrunkBinding(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, s := h.seed()
	srv := h.node(s.ID)
	rec := &recorder{}
	h.c.SetServerHook(srv.Server.ID, rec)
	id := h.port(n.ID, "")["id"].(string)
	base := "/compute/v2.1/servers/" + srv.Server.ID + "/os-interface"
	st, out := h.do("POST", base, fmt.Sprintf(`{"interfaceAttachment": {"port_id": %q}}`, id))
	ia, _ := out["interfaceAttachment"].(map[string]any)
	if st != 200 || ia["port_state"] != "ACTIVE" || ia["net_id"] != n.ID || ia["mac_addr"] == "" {
		t.Fatalf("attach: %d %v", st, out)
	}
	if len(rec.attached) != 1 || rec.attached[0].ID != id || rec.attached[0].DeviceID != srv.Server.ID ||
		rec.attached[0].HostID != "compute-node-1" || rec.attached[0].DeviceOwner != "compute:nova" {
		t.Errorf("hook saw %+v", rec.attached)
	}
	if st, _ := h.do("DELETE", base+"/"+id, ""); st != 202 || len(rec.detached) != 1 {
		t.Errorf("detach: %d, hook saw %d", st, len(rec.detached))
	}
	rec.attachErr = errors.New("no free PCI slot")
	st, out = h.do("POST", base, fmt.Sprintf(`{"interfaceAttachment": {"port_id": %q}}`, id))
	if p, _ := h.c.Port(id); st != 500 || out["computeFault"] == nil || p.DeviceID != "" || p.Status != "DOWN" {
		t.Errorf("failed attach: %d %v, port %+v", st, out, p)
	}

	// A subport of a bound parent is bound to the same host.
	sub := h.port(n.ID, "")["id"].(string)
	st, out = h.do("PUT", nw+"/trunks/"+srv.TrunkID+"/add_subports",
		fmt.Sprintf(`{"sub_ports": [{"port_id": %q, "segmentation_type": "vlan", "segmentation_id": 7}]}`, sub))
	if st != 200 || out["id"] != srv.TrunkID || out["status"] != "ACTIVE" {
		t.Fatalf("add_subports: %d %v", st, out)
	}
	if p, _ := h.c.Port(sub); p.HostID != "compute-node-1" || p.Status != "ACTIVE" || p.DeviceOwner != "trunk:subport" {
		t.Errorf("subport %+v", p)
	}
	if st, out := h.do("DELETE", nw+"/ports/"+sub, ""); st != 409 {
		t.Errorf("delete a subport's port: %d %v", st, out)
	}
	st, out = h.do("PUT", nw+"/trunks/"+srv.TrunkID+"/remove_subports", `{"sub_ports": [{"port_id": "nope"}]}`)
	if st != 404 {
		t.Errorf("remove an unknown subport: %d", st)
	}
	neutronErr(t, out, "SubPortNotFound")
}

func TestFaultsLatencyAndCounts(t *testing.T) {
	t.Parallel()
	h := start(t, Options{Seed: 1, Faults: map[string]Fault{"neutron.networks.*": {Rate: 1, Status: 503}}})
	n, _ := h.seed()
	if st, out := h.do("GET", nw+"/networks/"+n.ID, ""); st != 503 {
		t.Errorf("faulted get: %d %v", st, out)
	} else {
		neutronErr(t, out, "HTTPServiceUnavailable")
	}
	h.c.SetFault("neutron.networks.get", Fault{Rate: 0})
	h.c.SetFault("neutron.networks.*", Fault{})
	if st, _ := h.do("GET", nw+"/networks/"+n.ID, ""); st != 200 {
		t.Errorf("cleared fault: %d", st)
	}

	h.c.SetFault("neutron.ports.create", Fault{Rate: 1, Status: 500, After: true})
	st, _ := h.do("POST", nw+"/ports", fmt.Sprintf(`{"port": {"network_id": %q}}`, n.ID))
	if st != 500 || len(h.c.Ports()) != 1 {
		t.Errorf("after-fault: %d, %d ports (want the port made anyway)", st, len(h.c.Ports()))
	}
	h.c.SetFault("neutron.ports.create", Fault{})

	h.c.SetFault("neutron.ports.list", Fault{Rate: 1, Hang: true, HangFor: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.c.URL()+nw+"/ports", nil)
	req.Header.Set("X-Auth-Token", h.token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("hang fault answered %d", resp.StatusCode)
	}
	h.c.SetFault("neutron.ports.list", Fault{})

	h.c.SetLatency("neutron.ports.get", Latency{Fixed: 30 * time.Millisecond, Jitter: 10 * time.Millisecond})
	begin := time.Now()
	h.do("GET", nw+"/ports/x", "")
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Errorf("latency knob: answered in %v", d)
	}

	if h.c.Count("neutron.networks.get") != 2 || h.c.FaultCount("neutron.networks.get") != 1 ||
		h.c.Count("neutron.ports.list") != 1 || h.c.Count("keystone.tokens.create") != 1 {
		t.Errorf("counts %v", h.c.Counts())
	}
	h.c.ResetCounts()
	if len(h.c.Counts()) != 0 {
		t.Errorf("counts after reset %v", h.c.Counts())
	}
	if ops := h.c.Operations(); !slices.Contains(ops, "nova.interfaces.attach") || !slices.Contains(ops, "neutron.trunks.add_subports") {
		t.Errorf("operations %v", ops)
	}
}

func TestFaultLookup(t *testing.T) {
	t.Parallel()
	m := map[string]int{"*": 1, "neutron.*": 2, "neutron.ports.*": 3, "neutron.ports.create": 4}
	for op, want := range map[string]int{"neutron.ports.create": 4, "neutron.ports.get": 3, "neutron.trunks.get": 2, "nova.servers.get": 1} {
		if got, _ := lookup(m, op); got != want {
			t.Errorf("lookup(%s) = %d, want %d", op, got, want)
		}
	}
}

// TestBindDelay: with BindDelay a bound port is DOWN first, then ACTIVE.
func TestBindDelay(t *testing.T) {
	t.Parallel()
	h := start(t, Options{BindDelay: 50 * time.Millisecond})
	n, s := h.seed()
	srv, err := h.c.SeedServer(ServerSpec{Name: "vm", SubnetID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	id := h.port(n.ID, "")["id"].(string)
	st, out := h.do("POST", "/compute/v2.1/servers/"+srv.Server.ID+"/os-interface",
		fmt.Sprintf(`{"interfaceAttachment": {"port_id": %q}}`, id))
	if st != 200 || out["interfaceAttachment"].(map[string]any)["port_state"] != "DOWN" {
		t.Fatalf("attach with a bind delay: %d %v", st, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := h.c.Port(id)
		if p.Status == "ACTIVE" && p.HostID == "compute-vm" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("port still %s after the bind delay", p.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMaxAllowedAddressPairs: an update past the cloud's
// max_allowed_address_pair is 400 AllowedAddressPairExhausted at Neutron's
// default (10) and goes through where Options raise it.
func TestMaxAllowedAddressPairs(t *testing.T) {
	t.Parallel()
	var pairs []string
	for i := range 11 {
		pairs = append(pairs, fmt.Sprintf(`{"ip_address": "10.20.0.%d"}`, 100+i))
	}
	body := `{"port": {"allowed_address_pairs": [` + strings.Join(pairs, ", ") + `]}}`
	for _, tc := range []struct {
		max, status int
	}{{0, 400}, {11, 200}} {
		h := start(t, Options{MaxAllowedAddressPairs: tc.max})
		n, _ := h.seed()
		id := h.port(n.ID, "")["id"].(string)
		st, out := h.do("PUT", nw+"/ports/"+id, body)
		if st != tc.status {
			t.Errorf("11 pairs with MaxAllowedAddressPairs %d: %d, want %d", tc.max, st, tc.status)
		}
		if tc.status == 400 {
			neutronErr(t, out, "AllowedAddressPairExhausted")
		}
	}
}
