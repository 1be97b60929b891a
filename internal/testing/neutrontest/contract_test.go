package neutrontest

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// get walks m by keys (object keys, or indexes into arrays) and returns what
// is there (nil if anything is missing).
func get(m any, keys ...string) any {
	for _, k := range keys {
		switch v := m.(type) {
		case map[string]any:
			m = v[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			m = v[i]
		default:
			return nil
		}
	}
	return m
}

func getStr(t *testing.T, m any, keys ...string) string {
	t.Helper()
	s, ok := get(m, keys...).(string)
	if !ok {
		t.Fatalf("%v: no string at %v", m, keys)
	}
	return s
}

func wantField(t *testing.T, what string, m any, want any, keys ...string) {
	t.Helper()
	got := get(m, keys...)
	if f, ok := got.(float64); ok {
		got = int(f)
	}
	if got != want {
		t.Errorf("%s: %v = %#v, want %#v", what, keys, got, want)
	}
}

func ids(t *testing.T, list any, key string) []string {
	t.Helper()
	var out []string
	items, _ := get(list, key).([]any)
	for _, it := range items {
		out = append(out, getStr(t, it, "id"))
	}
	return out
}

// TestRealNeutron drives a real neutron-server through what kuryr-dpdk does
// (network, subnet, tagged ports, trunk, subports) and the errors it must
// handle, and checks the answers against testdata (or records them there
// with -update). It needs neutron-server installed (hack/neutron/install.sh).
func TestRealNeutron(t *testing.T) {
	srv := New(t)
	a := &api{t: t, base: srv.URL + "/v2.0"}
	defer a.finish()
	proj := srv.ProjectID

	ext := a.do("extensions", "GET", "/extensions", nil, nil, http.StatusOK)
	var aliases []string
	items, _ := ext["extensions"].([]any)
	for _, e := range items {
		aliases = append(aliases, getStr(t, e, "alias"))
	}
	for _, want := range []string{"trunk", "trunk-details", "standard-attr-tag", "revision-if-match",
		"binding", "tag-ports-during-bulk-creation", "allowed-address-pairs", "security-group"} {
		if !slices.Contains(aliases, want) {
			t.Errorf("extension %q not loaded; have %v", want, aliases)
		}
	}

	net := a.do("network-create", "POST", "/networks", nil,
		map[string]any{"network": map[string]any{"name": "kuryr-contract", "project_id": proj}}, http.StatusCreated)
	netID := getStr(t, net, "network", "id")
	wantField(t, "network", net, proj, "network", "project_id")
	wantField(t, "network", net, "ACTIVE", "network", "status")
	wantField(t, "network", net, "vxlan", "network", "provider:network_type")

	sub := a.do("subnet-create", "POST", "/subnets", nil, map[string]any{"subnet": map[string]any{
		"network_id": netID, "cidr": "10.10.0.0/24", "ip_version": 4, "project_id": proj}}, http.StatusCreated)
	subID := getStr(t, sub, "subnet", "id")
	wantField(t, "subnet", sub, "10.10.0.1", "subnet", "gateway_ip")

	tags := []any{"kuryr.cluster=contract", "kuryr.pod=0f6c"}
	port := a.do("port-create-tags", "POST", "/ports", nil, map[string]any{"port": map[string]any{
		"network_id": netID, "project_id": proj, "name": "pod-a", "device_owner": "compute:kuryr",
		"fixed_ips": []any{map[string]any{"subnet_id": subID}}, "tags": tags}}, http.StatusCreated)
	portID := getStr(t, port, "port", "id")
	wantField(t, "new port", port, "DOWN", "port", "status")
	if got, _ := get(port, "port", "tags").([]any); !slices.Equal(got, tags) {
		t.Errorf("new port tags = %v, want %v", got, tags)
	}
	rev, _ := get(port, "port", "revision_number").(float64)

	for _, q := range []struct {
		name, query string
		found       bool
	}{
		{"ports-filter-tags-all", "tags=kuryr.cluster=contract,kuryr.pod=0f6c", true},
		{"ports-filter-tags-all-miss", "tags=kuryr.cluster=contract,other", false},
		{"ports-filter-tags-any", "tags-any=other,kuryr.pod=0f6c", true},
		{"ports-filter-not-tags", "not-tags=kuryr.pod=0f6c", false},
		{"ports-filter-device-owner", "device_owner=compute:kuryr", true},
	} {
		// Scoped to this network: a shared server ($KURYR_NEUTRON_URL) has others.
		list := a.do(q.name, "GET", "/ports?"+q.query+"&network_id="+netID, nil, nil, http.StatusOK)
		if got := slices.Contains(ids(t, list, "ports"), portID); got != q.found {
			t.Errorf("GET /ports?%s: port %s listed = %v, want %v", q.query, portID, got, q.found)
		}
	}

	newPort := func(name string) string {
		t.Helper()
		p := a.do("port-create-"+name, "POST", "/ports", nil, map[string]any{"port": map[string]any{
			"network_id": netID, "project_id": proj, "name": name}}, http.StatusCreated)
		return getStr(t, p, "port", "id")
	}
	parentID := newPort("parent")
	trunk := a.do("trunk-create", "POST", "/trunks", nil, map[string]any{"trunk": map[string]any{
		"port_id": parentID, "project_id": proj, "name": "trunk-node-1"}}, http.StatusCreated)
	trunkID := getStr(t, trunk, "trunk", "id")
	wantField(t, "new trunk", trunk, "DOWN", "trunk", "status")

	sub1, sub2 := newPort("subport-1"), newPort("subport-2")
	added := a.do("trunk-add-subports", "PUT", "/trunks/"+trunkID+"/add_subports", nil,
		map[string]any{"sub_ports": []any{map[string]any{
			"port_id": sub1, "segmentation_type": "vlan", "segmentation_id": 101}}}, http.StatusOK)
	// The action answers with the bare trunk, not {"trunk": ...}.
	wantField(t, "add_subports answer", added, trunkID, "id")
	wantField(t, "add_subports answer", added, sub1, "sub_ports", "0", "port_id")

	dup := a.do("trunk-add-subports-duplicate-vlan", "PUT", "/trunks/"+trunkID+"/add_subports", nil,
		map[string]any{"sub_ports": []any{map[string]any{
			"port_id": sub2, "segmentation_type": "vlan", "segmentation_id": 101}}}, http.StatusConflict)
	wantField(t, "duplicate segmentation id", dup, "DuplicateSubPort", "NeutronError", "type")

	parent := a.do("port-get-trunk-parent", "GET", "/ports/"+parentID, nil, nil, http.StatusOK)
	wantField(t, "parent trunk_details", parent, trunkID, "port", "trunk_details", "trunk_id")
	subs, _ := get(parent, "port", "trunk_details", "sub_ports").([]any)
	if len(subs) != 1 {
		t.Fatalf("parent trunk_details.sub_ports = %v, want one", subs)
	}
	wantField(t, "trunk_details subport", subs[0], sub1, "port_id")
	wantField(t, "trunk_details subport", subs[0], 101, "segmentation_id")
	if _, ok := get(subs[0], "mac_address").(string); !ok {
		t.Errorf("trunk_details subport has no mac_address: %v", subs[0])
	}
	a.do("port-get-subport", "GET", "/ports/"+sub1, nil, nil, http.StatusOK)

	bound := a.do("port-update-bind-trunk-parent", "PUT", "/ports/"+parentID, nil, map[string]any{"port": map[string]any{
		"binding:host_id": "node-1", "device_id": "vm-1", "device_owner": "compute:nova"}}, http.StatusOK)
	// No agent runs on node-1, so ml2 cannot bind.
	wantField(t, "bound parent", bound, "binding_failed", "port", "binding:vif_type")

	early := newPort("bound-before-trunk")
	a.do("port-update-bind-before-trunk", "PUT", "/ports/"+early, nil,
		map[string]any{"port": map[string]any{"binding:host_id": "node-1"}}, http.StatusOK)
	inUse := a.do("trunk-create-on-bound-port", "POST", "/trunks", nil, map[string]any{"trunk": map[string]any{
		"port_id": early, "project_id": proj}}, http.StatusConflict)
	wantField(t, "trunk on bound port", inUse, "ParentPortInUse", "NeutronError", "type")

	pre := a.do("port-update-if-match-wrong", "PUT", "/ports/"+portID,
		map[string]string{"If-Match": "revision_number=9999"},
		map[string]any{"port": map[string]any{"name": "pod-a-renamed"}}, http.StatusPreconditionFailed)
	wantField(t, "If-Match mismatch", pre, "RevisionNumberConstraintFailed", "NeutronError", "type")
	okUpd := a.do("port-update-if-match-right", "PUT", "/ports/"+portID,
		map[string]string{"If-Match": "revision_number=" + strconv.Itoa(int(rev))},
		map[string]any{"port": map[string]any{"name": "pod-a-renamed"}}, http.StatusOK)
	wantField(t, "If-Match match", okUpd, int(rev)+1, "port", "revision_number")

	const missing = "00000000-0000-0000-0000-000000000000"
	nf := a.do("port-get-missing", "GET", "/ports/"+missing, nil, nil, http.StatusNotFound)
	wantField(t, "missing port", nf, "PortNotFound", "NeutronError", "type")
	wantField(t, "missing port", nf, "Port "+missing+" could not be found.", "NeutronError", "message")
	wantField(t, "missing port", nf, "", "NeutronError", "detail")

	if err := srv.SetPortStatus(portID, "ACTIVE"); err != nil {
		t.Fatal(err)
	}
	active := a.do("port-get-after-set-status", "GET", "/ports/"+portID, nil, nil, http.StatusOK)
	wantField(t, "port after SetPortStatus", active, "ACTIVE", "port", "status")
	wantField(t, "port after SetPortStatus", active, int(rev)+2, "port", "revision_number")
	if err := srv.SetPortStatus(missing, "ACTIVE"); err == nil {
		t.Errorf("SetPortStatus(%s) of a missing port succeeded", missing)
	}

	a.do("port-delete-missing", "DELETE", "/ports/"+missing, nil, nil, http.StatusNotFound)
	a.do("trunk-remove-subports", "PUT", "/trunks/"+trunkID+"/remove_subports", nil,
		map[string]any{"sub_ports": []any{map[string]any{"port_id": sub1}}}, http.StatusOK)
	// A trunk whose parent is bound cannot be deleted (the ovs driver wants
	// the agent to untrunk it first); unbinding the parent frees it.
	busy := a.do("trunk-delete-bound-parent", "DELETE", "/trunks/"+trunkID, nil, nil, http.StatusConflict)
	wantField(t, "delete trunk of a bound parent", busy, "TrunkInUse", "NeutronError", "type")
	a.do("port-update-unbind-trunk-parent", "PUT", "/ports/"+parentID, nil,
		map[string]any{"port": map[string]any{"binding:host_id": ""}}, http.StatusOK)
	a.do("trunk-delete", "DELETE", "/trunks/"+trunkID, nil, nil, http.StatusNoContent)
	a.do("trunk-delete-missing", "DELETE", "/trunks/"+trunkID, nil, nil, http.StatusNotFound)
	a.do("port-delete", "DELETE", "/ports/"+portID, nil, nil, http.StatusNoContent)

	bulk := a.do("ports-bulk-create-tags", "POST", "/ports", nil, map[string]any{"ports": []any{
		map[string]any{"network_id": netID, "project_id": proj, "name": "pool-1", "tags": []any{"pool"}},
		map[string]any{"network_id": netID, "project_id": proj, "name": "pool-2", "tags": []any{"pool"}},
	}}, http.StatusCreated)
	if n := len(ids(t, bulk, "ports")); n != 2 {
		t.Errorf("bulk create answered %d ports, want 2", n)
	}
	// noauth: a project header makes the request non-admin and then the body
	// must carry tenant_id.
	a.do("noauth-project-header", "POST", "/ports", map[string]string{"X-Project-Id": proj},
		map[string]any{"port": map[string]any{"network_id": netID}}, http.StatusBadRequest)
}
