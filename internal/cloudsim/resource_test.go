package cloudsim

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// ids returns the "id" of each object in out[key].
func ids(out map[string]any, key string) []string {
	var got []string
	list, _ := out[key].([]any)
	for _, o := range list {
		got = append(got, o.(map[string]any)["id"].(string))
	}
	return got
}

// create posts {key: body} to path and returns the new record's ID.
func (h *harness) create(path, key, body string) string {
	h.t.Helper()
	st, out := h.do("POST", nw+path, fmt.Sprintf(`{%q: %s}`, key, body))
	obj, _ := out[key].(map[string]any)
	if st != 201 || obj["id"] == nil {
		h.t.Fatalf("create %s: %d %v", key, st, out)
	}
	return obj["id"].(string)
}

// TestReadsOfEachResource: every resource's get answers its own key and
// 404 (type and message in Neutron's or Nova's dialect); lists keep their
// filters and order; a port's tags and a trunk's subports read as parts.
func TestReadsOfEachResource(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, s := h.seed()
	srv := h.node(s.ID)
	sg := h.create("/security-groups", "security_group", `{"name": "web"}`)
	for _, tc := range []struct{ path, key, id string }{
		{nw + "/networks/" + n.ID, "network", n.ID},
		{nw + "/subnets/" + s.ID, "subnet", s.ID},
		{nw + "/security-groups/" + sg, "security_group", sg},
		{nw + "/ports/" + srv.ParentPort.ID, "port", srv.ParentPort.ID},
		{nw + "/trunks/" + srv.TrunkID, "trunk", srv.TrunkID},
		{"/compute/v2.1/servers/" + srv.Server.ID, "server", srv.Server.ID},
	} {
		st, out := h.do("GET", tc.path, "")
		if obj, _ := out[tc.key].(map[string]any); st != 200 || len(out) != 1 || obj["id"] != tc.id {
			t.Errorf("GET %s: %d %v", tc.path, st, out)
		}
	}
	for _, tc := range []struct{ path, typ, msg string }{
		{nw + "/networks/nope", "NetworkNotFound", "Network nope could not be found."},
		{nw + "/subnets/nope", "SubnetNotFound", "Subnet nope could not be found."},
		{nw + "/security-groups/nope", "SecurityGroupNotFound", "Security group nope does not exist"},
		{nw + "/ports/nope", "PortNotFound", "Port nope could not be found."},
		{nw + "/ports/nope/tags", "PortNotFound", "Port nope could not be found."},
		{nw + "/trunks/nope", "TrunkNotFound", "Trunk nope could not be found."},
		{nw + "/trunks/nope/get_subports", "TrunkNotFound", "Trunk nope could not be found."},
	} {
		st, out := h.do("GET", tc.path, "")
		ne, _ := out["NeutronError"].(map[string]any)
		if st != 404 || ne["type"] != tc.typ || ne["message"] != tc.msg || ne["detail"] != "" {
			t.Errorf("GET %s: %d %v", tc.path, st, out)
		}
	}
	st, out := h.do("GET", "/compute/v2.1/servers/nope", "")
	if f, _ := out["itemNotFound"].(map[string]any); st != 404 || f["message"] != "Instance nope could not be found." || f["code"] != 404.0 {
		t.Errorf("GET a missing server: %d %v", st, out)
	}

	// Networks and trunks list by ID, ports in the order of creation.
	var nets []string
	for i := range 3 {
		nets = append(nets, h.create("/networks", "network", fmt.Sprintf(`{"name": "n%d"}`, i)))
	}
	_, out = h.do("GET", nw+"/networks", "")
	if got, want := ids(out, "networks"), slices.Sorted(slices.Values(append([]string{n.ID}, nets...))); !slices.Equal(got, want) {
		t.Errorf("networks %v, want %v", got, want)
	}
	for q, want := range map[string][]string{
		"?name=n1": {nets[1]}, "?id=" + nets[2]: {nets[2]}, "?name=n1&id=" + nets[2]: nil, "?name=": ids(out, "networks"),
	} {
		if _, out := h.do("GET", nw+"/networks"+q, ""); !slices.Equal(ids(out, "networks"), want) {
			t.Errorf("networks%s: %v, want %v", q, ids(out, "networks"), want)
		}
	}
	var ports []string
	for range 3 {
		ports = append(ports, h.port(n.ID, `, "tags": ["x"]`)["id"].(string))
	}
	if _, out := h.do("GET", nw+"/ports?tags=x", ""); !slices.Equal(ids(out, "ports"), ports) {
		t.Errorf("ports?tags=x: %v, want %v", ids(out, "ports"), ports)
	}
	if _, out := h.do("GET", nw+"/ports?id="+ports[2]+"&id="+ports[0], ""); !slices.Equal(ids(out, "ports"), []string{ports[0], ports[2]}) {
		t.Errorf("ports by two IDs: %v", ids(out, "ports"))
	}
	t2 := h.create("/trunks", "trunk", fmt.Sprintf(`{"port_id": %q, "name": "t2"}`, ports[0]))
	_, out = h.do("GET", nw+"/trunks", "")
	if got, want := ids(out, "trunks"), slices.Sorted(slices.Values([]string{srv.TrunkID, t2})); !slices.Equal(got, want) {
		t.Errorf("trunks %v, want %v", got, want)
	}
	for q, want := range map[string][]string{
		"?name=t2": {t2}, "?port_id=" + srv.ParentPort.ID: {srv.TrunkID}, "?tags=x": nil,
	} {
		if _, out := h.do("GET", nw+"/trunks"+q, ""); !slices.Equal(ids(out, "trunks"), want) {
			t.Errorf("trunks%s: %v, want %v", q, ids(out, "trunks"), want)
		}
	}

	// Parts of a record.
	if st, out := h.do("GET", nw+"/ports/"+ports[1]+"/tags", ""); st != 200 || fmt.Sprint(out) != "map[tags:[x]]" {
		t.Errorf("tags: %d %v", st, out)
	}
	if st, out := h.do("GET", nw+"/trunks/"+t2+"/get_subports", ""); st != 200 || fmt.Sprint(out) != "map[sub_ports:[]]" {
		t.Errorf("subports: %d %v", st, out)
	}
}

// TestDeletesOfEachResource: each delete answers 204, its 409 while in use
// and its 404 when gone.
func TestDeletesOfEachResource(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, s := h.seed()
	sg := h.create("/security-groups", "security_group", `{"name": "web"}`)
	parent := h.port(n.ID, fmt.Sprintf(`, "security_groups": [%q]`, sg))["id"].(string)
	trunk := h.create("/trunks", "trunk", fmt.Sprintf(`{"port_id": %q}`, parent))
	for _, tc := range []struct {
		path   string
		status int
		typ    string
	}{
		{nw + "/networks/" + n.ID, 409, "NetworkInUse"},
		{nw + "/subnets/" + s.ID, 409, "SubnetInUse"},
		{nw + "/security-groups/" + sg, 409, "SecurityGroupInUse"},
		{nw + "/ports/" + parent, 409, "PortInUseAsTrunkParent"},
		{nw + "/trunks/" + trunk, 204, ""},
		{nw + "/trunks/" + trunk, 404, "TrunkNotFound"},
		{nw + "/ports/" + parent, 204, ""},
		{nw + "/ports/" + parent, 404, "PortNotFound"},
		{nw + "/security-groups/" + sg, 204, ""},
		{nw + "/security-groups/" + sg, 404, "SecurityGroupNotFound"},
		{nw + "/subnets/" + s.ID, 204, ""},
		{nw + "/subnets/" + s.ID, 404, "SubnetNotFound"},
		{nw + "/networks/" + n.ID, 204, ""},
		{nw + "/networks/" + n.ID, 404, "NetworkNotFound"},
	} {
		st, out := h.do("DELETE", tc.path, "")
		if st != tc.status {
			t.Errorf("DELETE %s: %d %v, want %d", tc.path, st, out, tc.status)
			continue
		}
		if tc.typ != "" {
			neutronErr(t, out, tc.typ)
		} else if out != nil {
			t.Errorf("DELETE %s: body %v", tc.path, out)
		}
	}
	if st, out := h.do("GET", nw+"/networks/"+n.ID, ""); st != 404 {
		t.Errorf("network after delete: %d %v", st, out)
	}
}

// TestControlKnobs: the control API sets and clears faults and latency per
// operation, and refuses a body that does not decode.
func TestControlKnobs(t *testing.T) {
	t.Parallel()
	h := start(t, Options{})
	n, _ := h.seed()
	get := nw + "/networks/" + n.ID
	if st, _ := h.do("PUT", "/cloudsim/faults/neutron.networks.get", `{"rate": 1, "status": 503}`); st != 204 {
		t.Fatalf("set fault: %d", st)
	}
	if st, _ := h.do("GET", get, ""); st != 503 {
		t.Errorf("with the fault: %d", st)
	}
	if st, _ := h.do("DELETE", "/cloudsim/faults/neutron.networks.get", ""); st != 204 {
		t.Fatalf("clear fault: %d", st)
	}
	if st, _ := h.do("GET", get, ""); st != 200 {
		t.Errorf("without the fault: %d", st)
	}
	if st, _ := h.do("PUT", "/cloudsim/latency/neutron.networks.get", `{"fixed": "80ms"}`); st != 204 {
		t.Fatalf("set latency: %d", st)
	}
	began := time.Now()
	if st, _ := h.do("GET", get, ""); st != 200 || time.Since(began) < 80*time.Millisecond {
		t.Errorf("with latency: %d in %v", st, time.Since(began))
	}
	if st, _ := h.do("DELETE", "/cloudsim/latency/neutron.networks.get", ""); st != 204 {
		t.Fatalf("clear latency: %d", st)
	}
	h.c.knobs.Lock()
	knobs := len(h.c.faults) + len(h.c.latency)
	h.c.knobs.Unlock()
	if knobs != 0 {
		t.Errorf("%d knobs left", knobs)
	}
	for _, path := range []string{"/cloudsim/faults/x", "/cloudsim/latency/x"} {
		if st, out := h.do("PUT", path, `{"rate": "high"`); st != 400 || out["error"] == nil {
			t.Errorf("PUT %s with a bad body: %d %v", path, st, out)
		}
	}
}
